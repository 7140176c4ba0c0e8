"""Upgrades from every schema that ever shipped keep every chat, and shipped steps are frozen.

The fixtures in tests/fixtures/schemas/ were written by each shipped version's own code
(make_fixture.py beside them says how), not by today's code pretending to be old.
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest

from desktop import paths
from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.store import migrations
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database
from tests.fixtures.schemas.content import CONVERSATIONS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"

# Every database state a shipped version could leave behind: schema 2 (b34953f), schema 3
# before writer_pid (0546a20, the state that locked users out), schema 3 with it (c23e4cb).
SHIPPED = ["v2-b34953f.sqlite3", "v3-0546a20.sqlite3", "v3-c23e4cb.sqlite3"]

# SHA-256 of each shipped step (SQL text, or a function step's source). A step that shipped
# is never edited: change the schema with a new step. Add the new step's hash here.
FROZEN = {
    1: "45270bfdde11547590623bc7f4213443019d2e3f30851f7b60648b089b0f1680",
    2: "8cbd50e48dc9ce2ab06e5e8132e1d604554f468449d0a1b3aaf0a1cdf5dee3ba",
    3: "02f22ffb14fd59c440e91c9acb98a6895ab13fb9545acdb7abb0f50a4f9ddb11",
    4: "fae349ca423b19142d394565713c6a346de1ccad7fe2dd2e19c2b807ef5b26c5",
    5: "61213eaeae1819d2529ed96ef3ae1d50f8d034882ffbb09b983c8f6ac688e17f",
    6: "89930a0926a1748df32e1075d17beac358357dca1064976e02345dfc19578649",
    7: "8f4e6b44b4f9aee58732db3efc68c8ed923f72ba1b8913f14e40dc745d7b5cd5",
    8: "01abdd5727704532fecd757599a504f4896357026af7633cce8620484266460f",
}


def _digest(step: migrations.Step) -> str:
    text = step if isinstance(step, str) else inspect.getsource(step)
    return hashlib.sha256(text.encode()).hexdigest()


def test_shipped_steps_are_frozen() -> None:
    assert len(migrations.STEPS) == len(FROZEN), "a new step needs its hash in FROZEN"
    for number, step in enumerate(migrations.STEPS, 1):
        assert _digest(step) == FROZEN[number], (
            f"schema step {number} changed after it shipped: add a new step instead")


def _upgraded(tmp_path: Path, fixture: str) -> Database:
    target = tmp_path / fixture
    shutil.copyfile(FIXTURES / fixture, target)
    return Database(target)


@pytest.mark.parametrize("fixture", SHIPPED)
def test_every_shipped_schema_upgrades_with_every_chat(tmp_path: Path, fixture: str) -> None:
    old_version = sqlite3.connect(FIXTURES / fixture).execute("PRAGMA user_version").fetchone()[0]
    assert old_version < migrations.LATEST
    db = _upgraded(tmp_path, fixture)
    assert db.version == migrations.LATEST
    store = ChatStore(db)
    assert store.mark_interrupted() == 1  # the reply the old app was writing when killed
    conversations = sorted(store.conversations(), key=lambda c: c.id)
    assert [c.title for c in conversations] == [title for title, _, _ in CONVERSATIONS]
    for conversation, (_, system, expected) in zip(conversations, CONVERSATIONS, strict=True):
        assert conversation.system_prompt == system
        messages = store.messages(conversation.id)
        assert [(m.role, m.content) for m in messages] == [(r, c) for r, c, _ in expected]
        states = [m.state for m in messages]
        assert states == [("interrupted" if s == "streaming" else s) for _, _, s in expected]
        # The old chat is one branch of the message tree: each message follows the last one.
        assert [m.parent_id for m in messages] == [None, *[m.id for m in messages[:-1]]]
    assert [c.title for c in store.search("milk")] == ["Milk"]  # the FTS index came along
    assert [c.title for c in store.search("日本語")] == ["Unicode ✓ café"]


@pytest.mark.parametrize("fixture", SHIPPED)
def test_a_follow_up_works_after_the_upgrade(tmp_path: Path, fixture: str,
                                             gemma_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(FIXTURES / fixture, paths.database_path(data_dir))
    ctx = AppContext(data_dir)
    try:
        ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                           "max_tokens": 8}
        service = ChatService(ctx)
        service.load_model(gemma_path, n_ctx=1024)
        milk = next(c for c in ctx.chats.conversations() if c.title == "Milk")
        reply = service.send(milk.id, "What did I ask you to remember?")
        assert reply.state == "done" and reply.completion_tokens
        contents = [m.content for m in ctx.chats.messages(milk.id)]
        assert contents[:4] == [c for _, c, _ in CONVERSATIONS[0][2]]
        assert contents[4] == "What did I ask you to remember?"
    finally:
        ctx.close()


def test_the_writer_pid_repair_is_a_no_op_where_the_column_exists(tmp_path: Path) -> None:
    db = _upgraded(tmp_path, "v3-c23e4cb.sqlite3")
    columns = [row["name"] for row in db.query("PRAGMA table_info(messages)")]
    assert columns.count("writer_pid") == 1


def _open(path: str, barrier: multiprocessing.synchronize.Barrier,  # type: ignore[name-defined]
          results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()
    try:
        results.put(Database(Path(path)).version)
    except Exception as exc:  # noqa: BLE001 - the test reports whatever went wrong
        results.put(repr(exc))


@pytest.mark.parametrize("start", ["new", "v2-b34953f.sqlite3", "v3-0546a20.sqlite3"])
def test_processes_opening_one_data_dir_at_once_all_see_it_upgraded(tmp_path: Path,
                                                                   start: str) -> None:
    fork = multiprocessing.get_context("fork")
    for trial in range(5):
        path = tmp_path / f"{trial}.sqlite3"
        if start != "new":
            shutil.copyfile(FIXTURES / start, path)
        barrier = fork.Barrier(4)
        results = fork.Queue()
        procs = [fork.Process(target=_open, args=(str(path), barrier, results))
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        outcomes = [results.get() for _ in procs]
        for proc in procs:
            proc.join()
        assert outcomes == [migrations.LATEST] * 4
