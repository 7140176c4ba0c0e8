"""Message versions: regenerate and edit keep earlier versions in the message tree (schema 5),
the store returns the branch on screen, and prompts and exports see only that branch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import HearthError
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database
from desktop.core.store.export import conversation_data, write_export


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    return ChatStore(Database(tmp_path / "chats.sqlite3"))


def _chat(store: ChatStore, *texts: str) -> tuple[int, list[int]]:
    conv = store.create_conversation("x")
    ids = [store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", t).id
           for i, t in enumerate(texts)]
    return conv.id, ids


def test_branch_on_screen_and_versions_of_a_reply(store: ChatStore) -> None:
    conv, (q1, a1, q2, a2) = _chat(store, "q1", "a1", "q2", "a2")
    store.set_leaf(conv, q2)  # what regenerate does before writing the new reply
    a2b = store.add_message(conv, "assistant", "a2 again").id
    branch = store.messages(conv)
    assert [m.content for m in branch] == ["q1", "a1", "q2", "a2 again"]
    assert branch[-1].versions == [a2, a2b] and branch[-1].version == 2
    assert branch[0].versions == [q1] and branch[0].version == 1
    # The single-message read knows the versions too (the window shows ‹ 2/2 › at once).
    assert store.message(a2b).versions == [a2, a2b]
    # Back to the first version: the branch goes through it again.
    assert [m.content for m in store.select_version(conv, a2)] == ["q1", "a1", "q2", "a2"]
    assert store.messages(conv)[-1].version == 1
    # Nothing was deleted: every version is stored.
    assert len(store.all_messages(conv)) == 5


def test_editing_the_first_message_and_switching_back_follows_the_latest_leaf(
        store: ChatStore) -> None:
    conv, (q1, a1, q2, a2) = _chat(store, "q1", "a1", "q2", "a2")
    store.set_leaf(conv, None)  # edit of the first message: a new root
    q1b = store.add_message(conv, "user", "q1 edited").id
    a1b = store.add_message(conv, "assistant", "a1 for the edit").id
    assert [m.id for m in store.messages(conv)] == [q1b, a1b]
    assert store.messages(conv)[0].versions == [q1, q1b]
    # Switching to the old first message shows its whole old branch down to its newest leaf.
    assert [m.id for m in store.select_version(conv, q1)] == [q1, a1, q2, a2]
    # Under q1, a later reply to a regenerated a1 is newer than a2: it wins as the leaf.
    store.set_leaf(conv, q1)
    a1c = store.add_message(conv, "assistant", "a1 third").id
    store.select_version(conv, q1b)
    assert [m.id for m in store.select_version(conv, q1)] == [q1, a1c]


def test_delete_chat_deletes_every_version(store: ChatStore) -> None:
    conv, (q1, _a1) = _chat(store, "q1", "a1")
    store.set_leaf(conv, q1)
    store.add_message(conv, "assistant", "other")
    store.delete_conversation(conv)
    rows = store.db.query("SELECT COUNT(*) AS n FROM messages WHERE conversation_id = ?", (conv,))
    assert rows[0]["n"] == 0


def test_export_writes_the_branch_on_screen(store: ChatStore, tmp_path: Path) -> None:
    conv, (q1, _a1) = _chat(store, "q1", "first answer")
    store.set_leaf(conv, q1)
    store.add_message(conv, "assistant", "second answer")
    data = conversation_data(store, conv)
    assert [m["content"] for m in data["messages"]] == ["q1", "second answer"]
    written = write_export(store, conv, tmp_path / "chat.json")
    assert "first answer" not in written.read_text(encoding="utf-8")
    assert json.loads(written.read_text(encoding="utf-8"))["messages"][1]["versions"]
    assert "first answer" not in write_export(store, conv, tmp_path / "chat.md").read_text()


@pytest.fixture
def service(data_dir: Path, gemma_path: Path):  # noqa: ANN201
    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0.9,
                                       "seed": 1, "max_tokens": 6}
    svc = ChatService(ctx)
    svc.load_model(gemma_path, n_ctx=1024)
    yield svc
    ctx.close()


def _prompt_text(service: ChatService, conversation_id: int) -> str:
    conversation = service.ctx.chats.conversation(conversation_id)
    assert service.model is not None
    parts = service.build_prompt(conversation, service.model, service.sampling(conversation))
    return "".join(p["text"] for p in parts)


def test_regenerate_and_edit_keep_versions_with_the_real_model(service: ChatService) -> None:
    chats = service.ctx.chats
    conversation = service.new_conversation()
    first = service.send(conversation.id, "Name a fruit.")
    service.send(conversation.id, "And a vegetable?")
    # Regenerate the last reply: a sibling; the old one stays.
    last = chats.messages(conversation.id)[-1]
    again = service.regenerate(conversation.id)
    assert again.versions == [last.id, again.id] and again.parent_id == last.parent_id
    # Regenerate a reply in the middle of the chat (not the last one).
    middle = service.regenerate_reply(conversation.id, first.id)
    branch = chats.messages(conversation.id)
    assert [m.id for m in branch][-1] == middle.id and len(branch) == 2
    assert branch[-1].versions == [first.id, middle.id]
    # The next prompt is built from the branch on screen only: the new reply, not the old.
    assert "And a vegetable?" not in _prompt_text(service, conversation.id)
    # Edit the FIRST user message (not the last): a new version of it, with a new reply.
    question = branch[0]
    edited = service.edit_message(conversation.id, question.id, "Name a colour.")
    branch = chats.messages(conversation.id)
    assert [m.content for m in branch][0] == "Name a colour." and branch[1].id == edited.id
    assert branch[0].versions == [question.id, branch[0].id]
    assert "Name a fruit." not in _prompt_text(service, conversation.id)
    # Back to the old question: its newest reply comes back with it.
    back = service.switch_version(conversation.id, question.id)
    assert [m.id for m in back] == [question.id, middle.id]
    assert "Name a colour." not in _prompt_text(service, conversation.id)
    # Follow-ups continue the branch on screen, and each prompt starts with the previous one
    # (the KV cache prefix holds on a switched branch too).
    follow = service.send(conversation.id, "Why?")
    assert chats.messages(conversation.id)[-1].id == follow.id
    assert follow.prompt_tokens is not None and follow.completion_tokens is not None
    second = service.send(conversation.id, "Really?")
    assert second.cached_tokens >= follow.prompt_tokens + follow.completion_tokens - 1
    with pytest.raises(HearthError):
        service.edit_message(conversation.id, middle.id, "not mine")


def test_continue_counts_the_whole_reply(service: ChatService) -> None:
    chats = service.ctx.chats
    conversation = service.new_conversation()
    reply = service.send(conversation.id, "Tell me a long story about a cat.")
    assert reply.stop_reason == "length" and reply.completion_tokens == 6
    longer = service.continue_reply(conversation.id)
    assert longer.id == reply.id and longer.completion_tokens == 12
    assert chats.message(reply.id).completion_tokens == 12
