"""The conversation service with the real model: lifecycle, settings, context budget, cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import ModelFileError, UnsafeTemplateError
from tests.gguf_files import write_small_gguf


@pytest.fixture
def service(data_dir: Path, gemma_path: Path):  # noqa: ANN201
    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                       "max_tokens": 16}
    svc = ChatService(ctx)
    svc.load_model(gemma_path, n_ctx=2048)
    yield svc
    ctx.close()


def test_user_message_is_durable_before_the_first_token(service: ChatService) -> None:
    conversation = service.new_conversation()
    seen: list[list[tuple[str, str]]] = []

    def on_text(_: str) -> None:
        if not seen:
            seen.append([(m.role, m.state) for m in service.ctx.chats.messages(conversation.id)])

    reply = service.send(conversation.id, "Hello there", on_text=on_text)
    assert seen[0] == [("user", "done"), ("assistant", "streaming")]
    assert reply.state == "done" and reply.completion_tokens == 16
    assert service.ctx.chats.conversation(conversation.id).title == "Hello there"


def test_follow_up_turn_is_served_from_the_cache(service: ChatService) -> None:
    conversation = service.new_conversation(system_prompt="You are terse.")
    first = service.send(conversation.id, "Describe a forest in detail.")
    second = service.send(conversation.id, "And a desert?")
    assert second.cached_tokens >= first.prompt_tokens + first.completion_tokens - 1
    assert second.prompt_tokens - second.cached_tokens < 20


def test_asking_again_after_a_reply_failed_before_its_first_word(service: ChatService) -> None:
    conversation = service.new_conversation()
    chats = service.ctx.chats
    chats.add_message(conversation.id, "user", "Name a colour.")
    chats.add_message(conversation.id, "assistant", "", state="failed")  # died before a word
    reply = service.send(conversation.id, "Name a colour, please.")
    assert reply.state == "done" and reply.completion_tokens
    parts = service.build_prompt(chats.conversation(conversation.id), service.model,
                                 service.sampling(conversation), exclude=reply.id)
    text = "".join(p["text"] for p in parts)
    assert text.count("<start_of_turn>user") == 1  # one user turn holding both questions
    assert "Name a colour.\n\nName a colour, please." in text


def test_system_prompt_with_a_template_that_refuses_a_system_turn(service: ChatService) -> None:
    import dataclasses

    from desktop.core.chat.templates import ChatFormat

    # Gemma 2's template raises on a system turn; the prompt must still render, with the
    # instructions leading the first user message.
    gemma2 = ChatFormat(
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else "
        "m.role }}\n{{ m.content | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}", "model", [])
    model = dataclasses.replace(service.model, fmt=gemma2)
    conversation = service.new_conversation(system_prompt="Answer in French.")
    service.ctx.chats.add_message(conversation.id, "user", "Hello")
    parts = service.build_prompt(service.ctx.chats.conversation(conversation.id), model,
                                 service.sampling(conversation))
    text = "".join(p["text"] for p in parts)
    assert text == "<start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>\n" \
                   "<start_of_turn>model\n"


def test_per_conversation_sampling_and_seed(service: ChatService) -> None:
    settings = {"temperature": 1.0, "seed": 1234, "max_tokens": 12}
    a = service.new_conversation(settings=settings)
    b = service.new_conversation(settings=settings)
    reply_a = service.send(a.id, "Pick a random animal.")
    # Something else in between, so b's prompt is processed the same way a's was (llama.cpp's
    # logits differ in the last bits between a batched and a one-token decode).
    service.send(service.new_conversation().id, "Unrelated.")
    reply_b = service.send(b.id, "Pick a random animal.")
    assert reply_a.content == reply_b.content  # same seed, same sampling, same reply
    assert reply_a.completion_tokens == 12
    assert service.sampling(a)["temperature"] == 1.0


def test_long_history_is_trimmed_in_steps_and_never_overflows(data_dir: Path,
                                                              gemma_path: Path) -> None:
    # Small on purpose (a 256-token context, 4-token replies, ~45-token turns): the same
    # trimming happens as in a long chat, at a few seconds' cost even on a slow machine.
    ctx = AppContext(data_dir)
    try:
        ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                           "max_tokens": 4}
        service = ChatService(ctx)
        service.load_model(gemma_path, n_ctx=256)
        conversation = service.new_conversation()
        paragraph = "The river runs past the mill and the old stone bridge. " * 3
        starts = []
        for turn in range(8):
            reply = service.send(conversation.id, f"Turn {turn}. {paragraph}")
            assert reply.state == "done"
            assert reply.prompt_tokens + reply.completion_tokens <= 256
            starts.append(service.context_start.get(conversation.id))
        assert starts[0] is None and starts[-1] is not None  # older turns left the context
        moved = [i for i in range(1, len(starts)) if starts[i] != starts[i - 1]]
        # The window moved in steps: after a jump it stayed put for the next turn (so the
        # cache held), and it jumped fewer times than there were turns.
        assert moved and any(starts[i] == starts[i - 1] is not None
                             for i in range(moved[0] + 1, len(starts)))
        assert len(moved) < len(starts) // 2
    finally:
        ctx.close()


def test_regenerate_and_edit(service: ChatService) -> None:
    conversation = service.new_conversation()
    service.send(conversation.id, "First")
    again = service.regenerate(conversation.id)
    messages = service.ctx.chats.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].id == again.id
    service.edit_last_user_message(conversation.id, "Second")
    assert [m.content for m in service.ctx.chats.messages(conversation.id)][0] == "Second"


def test_hostile_template_refused_before_llama_cpp_sees_it(data_dir: Path, tmp_path: Path) -> None:
    evil = write_small_gguf(tmp_path / "evil.gguf", chat_template=(
        "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}"))
    ctx = AppContext(data_dir)
    try:
        with pytest.raises(UnsafeTemplateError):
            ChatService(ctx).load_model(evil)
        assert ctx._engine is None  # no worker was even started
        assert not Path("PWNED").exists()
    finally:
        ctx.close()


def test_embedding_model_is_refused_for_chat(data_dir: Path, embed_model_path: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        entry = ctx.library.add(embed_model_path)
        assert entry.is_embedding and entry.as_dict()["embedding_only"] is True
        with pytest.raises(ModelFileError, match="is an embedding model"):
            ChatService(ctx).load_model(embed_model_path)
        assert ctx._engine is None  # refused from the header, before any worker starts
    finally:
        ctx.close()


def test_per_model_defaults(data_dir: Path, gemma_path: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        ctx.library.add(gemma_path)
        ctx.library.set_settings(str(gemma_path), {"n_ctx": 1024, "system_prompt": "Be terse.",
                                                   "max_tokens": 5, "temperature": 0})
        service = ChatService(ctx)
        assert service.load_model(gemma_path).n_ctx == 1024
        conversation = service.new_conversation()
        assert conversation.system_prompt == "Be terse."
        reply = service.send(conversation.id, "Hello")
        assert reply.completion_tokens == 5
        # A conversation's own settings still win over the model's.
        ctx.chats.update_conversation(conversation.id, settings={"max_tokens": 3})
        assert service.send(conversation.id, "Again").completion_tokens == 3
    finally:
        ctx.close()


def test_deleting_a_chat_deletes_its_kv_state(service: ChatService) -> None:
    long_text = "The keeper logged the weather and the ships that passed. " * 30
    a = service.new_conversation()
    service.send(a.id, long_text)
    service.send(service.new_conversation().id, "Something else")  # leaving chat a saves it
    states = service.ctx.data_dir / "kv-states"
    assert list(states.glob(f"*/{a.id}.kvstate"))
    service.delete_conversation(a.id)
    assert not list(states.glob(f"*/{a.id}.kvstate"))


def test_answers_from_documents_cite_sources_and_keep_the_cache(
        data_dir: Path, gemma_path: Path, embed_model_path: Path, tmp_path: Path) -> None:
    from tests.doc_corpus import write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    ctx = AppContext(data_dir)
    try:
        ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                           "max_tokens": 8}
        ctx.settings.set("embed_model", str(embed_model_path))
        embed, model_id = ctx.embedder()
        collection = ctx.documents.create_collection("handbook")
        ctx.documents.add_paths(collection, [corpus["pdf"].parent], embedder=embed,
                                embed_model=model_id)
        service = ChatService(ctx)
        service.load_model(gemma_path, n_ctx=4096)
        conversation = service.new_conversation(system_prompt="Answer briefly.")
        ctx.documents.attach(conversation.id, collection)

        first = service.send(conversation.id, "How much annual leave do staff get?")
        sources = first.sources
        assert sources and sources[0]["path"].endswith("handbook.pdf") and sources[0]["page"] == 1
        assert "25 days of paid vacation" in sources[0]["text"]
        user = ctx.chats.messages(conversation.id)[0]
        assert user.content == "How much annual leave do staff get?"  # what the user typed
        assert "[1] handbook.pdf, page 1" in user.context  # what the model saw, in this turn
        assert ctx.chats.conversation(conversation.id).system_prompt == "Answer briefly."

        # A follow-up in the same chat: its excerpts go into the new turn, the old turn is
        # reused from the KV cache, and the follow-up is searched with the previous question.
        second = service.send(conversation.id, "And can it be carried over?")
        assert second.cached_tokens >= first.prompt_tokens + first.completion_tokens - 1
        assert any("carried over" in s["text"] for s in second.sources)

        fresh = service.new_conversation()
        ctx.documents.attach(fresh.id, collection)
        nothing = service.send(fresh.id, "zyxwv qqqq")
        last_user = [m for m in ctx.chats.messages(fresh.id) if m.role == "user"][-1]
        assert nothing.sources == []
        assert "No passage in my attached documents matched" in last_user.context
    finally:
        ctx.close()
