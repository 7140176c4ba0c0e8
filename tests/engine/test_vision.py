"""Images through the real worker: the real Gemma 3 270M model with a tiny projector built by
tests/vision_files.py, loaded and run by llama.cpp's libmtmd (no mock anywhere).

What this proves: the projector loads beside the model, images are preprocessed, encoded and
their embeddings decoded into the KV cache in order with the text, their tokens count in
prompt_tokens, and a text turn after an image turn reuses the cache across the image. What it
cannot prove: that answers describe the image (the projector's weights are random).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.chat.vision import expand_images, marked_content
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import EngineError, ModelFileError
from tests.vision_files import IMAGE_TOKENS, write_png, write_tiny_mmproj

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
GREEDY = {"temperature": 0, "stop": GEMMA.stop, "speculative": True}


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mmproj(tmp_path_factory.mktemp("vision") / "mmproj-tiny-f32.gguf")


@pytest.fixture(scope="module")
def vision_engine(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path, mmproj: Path):
    client = EngineClient(tmp_path_factory.mktemp("engine") / "engine.log")
    loaded = client.load(LoadOptions(str(gemma_path), n_ctx=2048, mmproj=str(mmproj)))
    assert loaded["info"]["vision"] is True
    yield client
    client.shutdown()


def _prompt(turns: list[tuple[str, str, list[str]]]) -> list[dict]:
    """Render (role, text, image paths) turns the way the chat service does."""
    paths: list[str] = []
    messages = []
    for role, text, images in turns:
        messages.append({"role": role, "content": marked_content(text, len(paths), len(images))})
        paths.extend(images)
    return expand_images(render_parts(GEMMA, messages), paths)


def test_image_turn_generates_and_counts_image_tokens(vision_engine: EngineClient,
                                                      tmp_path: Path) -> None:
    image = str(write_png(tmp_path / "red.png", color=(220, 30, 30)))
    text_only = vision_engine.generate(_prompt([("user", "What is this?", [])]),
                                       {**GREEDY, "max_tokens": 4})
    text_only.wait()
    with_image = vision_engine.generate(_prompt([("user", "What is this?", [image])]),
                                        {**GREEDY, "max_tokens": 12})
    reply = "".join(with_image)
    result = with_image.result
    assert result["completion_tokens"] >= 1 and result["stop_reason"] in ("stop", "length")
    assert reply or result["stop_reason"] == "stop"
    # The image adds its 16 embedding positions plus <start_of_image>/<end_of_image> (and the
    # newline after the marker) to the prompt.
    added = result["prompt_tokens"] - text_only.result["prompt_tokens"]
    assert IMAGE_TOKENS + 2 <= added <= IMAGE_TOKENS + 4
    counted = vision_engine.count_image_tokens([image])
    assert counted == [IMAGE_TOKENS + 2]


def test_text_turn_after_an_image_turn_reuses_the_cache(vision_engine: EngineClient,
                                                        tmp_path: Path) -> None:
    image = str(write_png(tmp_path / "blue.png", width=70, height=50, color=(20, 40, 230)))
    params = {**GREEDY, "session": "vision-chat"}
    first = vision_engine.generate(_prompt([("user", "Describe the picture.", [image])]),
                                   {**params, "max_tokens": 16})
    reply = "".join(first)
    turn1 = first.result
    second = vision_engine.generate(
        _prompt([("user", "Describe the picture.", [image]), ("assistant", reply, []),
                 ("user", "And its colour?", [])]), {**params, "max_tokens": 6})
    second.wait()
    turn2 = second.result
    # Everything of turn 1, image included, came from the KV cache.
    assert turn2["cached_tokens"] >= turn1["prompt_tokens"] + turn1["completion_tokens"] - 1
    assert turn2["prompt_tokens"] - turn2["cached_tokens"] < 20


def test_another_image_is_read_again_from_its_first_position(vision_engine: EngineClient,
                                                             tmp_path: Path) -> None:
    a = str(write_png(tmp_path / "a.png", color=(10, 200, 10)))
    b = str(write_png(tmp_path / "b.png", color=(200, 200, 10)))
    first = vision_engine.generate(_prompt([("user", "Look.", [a])]), {**GREEDY, "max_tokens": 2})
    first.wait()
    second = vision_engine.generate(_prompt([("user", "Look.", [b])]),
                                    {**GREEDY, "max_tokens": 2})
    second.wait()
    # Only the turn header before the image can match (under MIN_REUSE: read afresh), never
    # a part of image a standing for image b.
    assert second.result["cached_tokens"] < second.result["prompt_tokens"] - IMAGE_TOKENS


def test_not_an_image_is_one_sentence(vision_engine: EngineClient, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    with pytest.raises(EngineError, match="not an image"):
        vision_engine.generate(_prompt([("user", "Look.", [str(bogus)])]),
                               {**GREEDY, "max_tokens": 2}).wait()
    # The worker is fine afterwards.
    assert "".join(vision_engine.generate(_prompt([("user", "Hi", [])]),
                                          {**GREEDY, "max_tokens": 2})) is not None


def test_a_projector_for_another_model_is_refused(tmp_path: Path, gemma_path: Path) -> None:
    wrong = write_tiny_mmproj(tmp_path / "mmproj-576.gguf", text_embd=576)  # SmolLM2's width
    client = EngineClient(tmp_path / "engine.log")
    try:
        with pytest.raises(ModelFileError, match="projector"):
            client.load(LoadOptions(str(gemma_path), n_ctx=512, mmproj=str(wrong)))
    finally:
        client.shutdown()


def test_images_need_a_projector(engine: EngineClient, tmp_path: Path) -> None:
    image = str(write_png(tmp_path / "x.png"))
    with pytest.raises(EngineError, match="cannot see images"):
        engine.generate(_prompt([("user", "Look.", [image])]), {**GREEDY, "max_tokens": 2}).wait()
