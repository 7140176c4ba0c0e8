"""Images in chats, end to end through the chat service and the real worker: the real Gemma 3
270M model with the tiny projector of tests/vision_files.py (libmtmd's real code path; the
weights are random, so nothing here checks what the answers say about a picture)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import HearthError
from desktop.core.store.export import conversation_data, to_markdown, write_export
from desktop.core.store.images import ImageError, ImageStore
from tests.vision_files import IMAGE_TOKENS, png_bytes, write_png, write_tiny_mmproj


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mmproj(tmp_path_factory.mktemp("vision") / "mmproj-tiny-f32.gguf")


@pytest.fixture
def service(data_dir: Path, gemma_path: Path, mmproj: Path):  # noqa: ANN201
    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                       "max_tokens": 8}
    entry = ctx.library.add(gemma_path)
    ctx.library.set_settings(entry.path, {**entry.settings, "mmproj": str(mmproj)})
    svc = ChatService(ctx)
    svc.load_model(gemma_path, n_ctx=2048)
    assert svc.model is not None and svc.model.loaded["vision"]
    yield svc
    ctx.close()


def test_image_turn_then_text_turn_reuses_the_cache(service: ChatService, tmp_path: Path) -> None:
    picture = write_png(tmp_path / "photo.png", color=(30, 120, 200))
    conversation = service.new_conversation()
    plain = service.send(service.new_conversation().id, "What is in this picture?")
    first = service.send(conversation.id, "What is in this picture?", images=[str(picture)])
    assert first.state == "done" and first.completion_tokens
    # The image's positions (and its two markers, and the newline after them) are counted.
    assert first.prompt_tokens - plain.prompt_tokens >= IMAGE_TOKENS + 2
    second = service.send(conversation.id, "Tell me more.")
    assert second.cached_tokens >= first.prompt_tokens + first.completion_tokens - 1
    assert second.prompt_tokens - second.cached_tokens < 20
    stored = service.ctx.chats.messages(conversation.id)[0]
    assert stored.images == [hashlib.sha256(picture.read_bytes()).hexdigest()]


def test_an_image_is_stored_once_and_deleted_with_its_last_chat(service: ChatService,
                                                                tmp_path: Path) -> None:
    picture = write_png(tmp_path / "cat.png", color=(90, 90, 90))
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    a = service.new_conversation()
    b = service.new_conversation()
    service.add_user_message(a.id, "Look", images=[str(picture)])
    service.add_user_message(b.id, "Look again", images=[str(picture), str(picture)])
    folder = service.ctx.data_dir / "images"
    assert sorted(p.name for p in folder.iterdir()) == [f"{digest}.png"]  # content address
    service.delete_conversation(a.id)
    assert (folder / f"{digest}.png").is_file()  # chat b still sends it
    service.delete_conversation(b.id)
    assert not (folder / f"{digest}.png").exists()


def test_export_carries_the_images(service: ChatService, tmp_path: Path) -> None:
    picture = write_png(tmp_path / "dog.png", color=(250, 200, 0))
    conversation = service.new_conversation()
    service.add_user_message(conversation.id, "A picture", images=[str(picture)])
    data = conversation_data(service.ctx.chats, conversation.id)
    image = data["messages"][0]["images"][0]
    assert base64.b64decode(image["base64"]) == picture.read_bytes()
    assert image["type"] == "image/png"
    markdown = to_markdown(data)
    assert f"](data:image/png;base64,{image['base64']})" in markdown
    out = write_export(service.ctx.chats, conversation.id, tmp_path / "chat.json")
    assert json.loads(out.read_text())["messages"][0]["images"][0]["sha256"] == image["sha256"]


def test_an_image_only_message_is_answered(service: ChatService, tmp_path: Path) -> None:
    conversation = service.new_conversation()
    reply = service.send(conversation.id, "", images=[str(write_png(tmp_path / "o.png"))])
    assert reply.state == "done" and reply.prompt_tokens > IMAGE_TOKENS


def test_bad_images_are_one_sentence_and_store_nothing(service: ChatService,
                                                       tmp_path: Path) -> None:
    conversation = service.new_conversation()
    text = tmp_path / "notes.png"
    text.write_text("just text")
    with pytest.raises(ImageError, match="not a PNG, JPEG, GIF or BMP"):
        service.send(conversation.id, "Look", images=[str(text)])
    with pytest.raises(ImageError, match="could not be read"):
        service.send(conversation.id, "Look", images=[str(tmp_path / "missing.png")])
    assert service.ctx.chats.messages(conversation.id) == []


def test_a_model_without_projector_refuses_images(data_dir: Path, gemma_path: Path,
                                                  tmp_path: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        svc = ChatService(ctx)
        svc.load_model(gemma_path, n_ctx=512)
        conversation = svc.new_conversation()
        with pytest.raises(HearthError, match="cannot see images"):
            svc.send(conversation.id, "Look", images=[str(write_png(tmp_path / "p.png"))])
        assert ctx.chats.messages(conversation.id) == []
    finally:
        ctx.close()


def test_image_store_is_content_addressed(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = png_bytes(color=(1, 2, 3))
    digest = store.add_bytes(data)
    assert store.add_bytes(data) == digest
    assert store.read(digest) == data
    assert store.path("../../etc/passwd") is None  # only hashes name files
