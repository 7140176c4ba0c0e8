"""Speculative decoding's stats are stored with the reply (schema 8), with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService, drafting_stats
from desktop.core.context import AppContext
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database
from desktop.core.store.export import conversation_data

# A reply that repeats its prompt: prompt-lookup drafts find every next token there.
FRUIT = ", ".join(["apple", "banana", "cherry", "date", "elderberry", "fig", "grape",
                   "honeydew"] * 3)
REPEAT = f"Repeat this list exactly: {FRUIT}"


@pytest.fixture
def service(data_dir: Path, gemma_path: Path):  # noqa: ANN201
    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                       "max_tokens": 40}
    svc = ChatService(ctx)
    svc.load_model(gemma_path, n_ctx=2048)
    yield svc
    ctx.close()


def test_a_drafted_reply_keeps_its_stats_in_the_database(service: ChatService,
                                                         data_dir: Path) -> None:
    conversation = service.new_conversation()
    reply = service.send(conversation.id, REPEAT)
    spec = reply.spec
    assert spec["drafted"] > 0 and 0 < spec["accepted"] <= spec["drafted"]
    assert spec["speedup"] > 0
    # Read back from the SQLite file by a second connection, as the next start would.
    again = ChatStore(Database(service.ctx.db.path)).message(reply.id)
    assert again.spec == spec
    exported = conversation_data(service.ctx.chats, conversation.id)["messages"][-1]
    assert exported["spec"] == spec and "spec_json" not in exported


def test_drafting_off_stores_no_stats(service: ChatService) -> None:
    conversation = service.new_conversation(settings={"speculative": False})
    reply = service.send(conversation.id, REPEAT)
    assert reply.state == "done" and reply.completion_tokens
    assert reply.spec_json is None and reply.spec == {}


def test_continue_adds_its_drafts_to_the_earlier_ones() -> None:
    class Earlier:
        spec = {"drafted": 10, "accepted": 5, "speedup": 1.0}

    done = {"speculative": True, "spec_drafted": 20, "spec_accepted": 15,
            "spec_speedup_est": 2.0, "completion_tokens": 30}
    merged = json.loads(drafting_stats(done, Earlier(), earlier_tokens=10) or "")  # type: ignore[arg-type]
    assert merged == {"drafted": 30, "accepted": 20, "speedup": 1.75}
    # A continuation with drafting off keeps what the first part drafted.
    assert json.loads(drafting_stats({"speculative": False}, Earlier()) or "") == Earlier.spec  # type: ignore[arg-type]
    assert drafting_stats({}) is None  # a remote engine reports no drafting
