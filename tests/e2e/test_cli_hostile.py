"""The real CLI in real processes under hostile conditions (issue 10): kill -9 right after
the message is stored, models that cannot load, a read-only chat database, a nearly full
disk, and a damaged settings file. Each ends in one sentence, never a traceback, and
loses nothing that was saved.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.gguf_files import write_small_gguf

REPO = Path(__file__).resolve().parents[2]
MAIN = [sys.executable, str(REPO / "main.py")]


def hearth(data_dir: Path, *args: str, prefix: tuple[str, ...] = ()
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *MAIN, "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=240, cwd=REPO)


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error: exit status 1, a first line `hearth: ...`, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("hearth: "), result.stderr
    return first


def conversations(data_dir: Path) -> list[dict]:
    out = hearth(data_dir, "history", "list", "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def messages(data_dir: Path, conversation_id: int) -> list[dict]:
    out = hearth(data_dir, "history", "show", str(conversation_id), "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["messages"])


def _user_rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM messages WHERE role = 'user'")
                       .fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


def test_kill_right_after_the_message_is_stored_keeps_it(data_dir: Path,
                                                         gemma_path: Path) -> None:
    text = "Remember this: the spare key is under the blue flowerpot."
    process = subprocess.Popen(
        [*MAIN, "--data-dir", str(data_dir), "chat", "--model", str(gemma_path),
         "--max-tokens", "200", text],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    db = data_dir / "hearth.sqlite3"
    try:
        # The event: the user's row committed to the real file (read by another connection).
        while _user_rows(db) == 0:
            try:
                process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the CLI ended before storing the message: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    [chat] = conversations(data_dir)
    assert chat["title"] and chat["title"] in text
    stored = messages(data_dir, chat["id"])
    assert stored[0]["role"] == "user" and stored[0]["content"] == text


def test_a_model_llama_cpp_refuses_still_keeps_the_message(data_dir: Path,
                                                           tmp_path: Path) -> None:
    # A header that passes the check but no weights llama.cpp can use: the load fails, after
    # the message was stored (it used to be stored only once the model had loaded).
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    out = hearth(data_dir, "chat", "--model", str(tiny), "please keep this message")
    assert "could not load tiny.gguf" in one_sentence(out)
    [chat] = conversations(data_dir)
    assert [(m["role"], m["content"]) for m in messages(data_dir, chat["id"])] == [
        ("user", "please keep this message")]


def test_a_bad_model_leaves_no_conversation(data_dir: Path, tmp_path: Path,
                                            gemma_path: Path) -> None:
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("not a model " * 100)
    cut = tmp_path / "cut.gguf"
    with gemma_path.open("rb") as src:
        cut.write_bytes(src.read(3_000_000))
    for bad in (tmp_path / "missing.gguf", text_file, cut, tmp_path):
        one_sentence(hearth(data_dir, "chat", "--model", str(bad), "hello"))
    assert conversations(data_dir) == []

    # An existing chat is left as it was: no message added by a run whose model is bad.
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    one_sentence(hearth(data_dir, "chat", "--model", str(tiny), "first"))
    one_sentence(hearth(data_dir, "chat", "--continue", "--model", str(text_file), "second"))
    [chat] = conversations(data_dir)
    assert [m["content"] for m in messages(data_dir, chat["id"])] == ["first"]


def test_a_run_that_fails_before_the_message_leaves_no_empty_chat(data_dir: Path,
                                                                  tmp_path: Path) -> None:
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    out = hearth(data_dir, "chat", "--model", str(tiny), "--collection", "No such", "hi")
    assert "no collection named" in one_sentence(out)
    assert conversations(data_dir) == []  # no empty "New chat" for the window's sidebar


def test_models_add_refuses_a_file_that_can_never_load(data_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    # block_count = 2^31 passed the old header check and aborted the worker (GGML_ASSERT).
    path = tmp_path / "huge-layers.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(2**31)
    writer.add_token_list(["<unk>", "<s>", "</s>"])
    writer.add_tensor("token_embd.weight", np.zeros((3, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (data_dir / "settings.json").write_text(json.dumps({"starter_registered": True}))
    out = hearth(data_dir, "models", "add", str(path))
    assert "llama.block_count is 2147483648" in one_sentence(out)
    listing = hearth(data_dir, "models", "list", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout) == []  # not registered
    refused = hearth(data_dir, "chat", "--model", str(path), "hello")
    assert "block_count" in one_sentence(refused)
    assert conversations(data_dir) == []


# --- read-only database, full disk --------------------------------------------------------
def _namespaces_work() -> bool:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True) if shutil.which("unshare") else None
    return probe is not None and probe.returncode == 0


@contextmanager
def read_only(path: Path) -> Iterator[tuple[str, ...]]:
    """Make `path` really read-only for the CLI, even when the tests run as root (who
    ignores file modes); yields a command prefix that runs the CLI where it is."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield ()
        finally:
            path.chmod(0o644)
        return
    # Root: the immutable attribute makes open(O_RDWR) fail, so SQLite falls back to a
    # read-only handle, as it does for a user's read-only file.
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield ()
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    if not _namespaces_work():
        pytest.fail("a read-only database needs a non-root user, `chattr +i` on this "
                    "filesystem, or user namespaces (`unshare -rm`) for a read-only bind mount")
    script = f'mount --bind "{path}" "{path}" && mount -o remount,bind,ro "{path}" && exec "$@"'
    yield ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh")


def test_a_read_only_database_is_one_sentence_and_history_still_reads(
        data_dir: Path, tmp_path: Path) -> None:
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    one_sentence(hearth(data_dir, "chat", "--model", str(tiny), "saved before"))
    db = data_dir / "hearth.sqlite3"
    with read_only(db) as prefix:
        out = hearth(data_dir, "chat", "--model", str(tiny), "--continue", "more",
                     prefix=prefix)
        assert "database is read-only" in one_sentence(out)
        listing = hearth(data_dir, "history", "list", "--json", prefix=prefix)
        assert listing.returncode == 0, listing.stderr
        assert [c["title"] for c in json.loads(listing.stdout)] == ["saved before"]
    [chat] = conversations(data_dir)
    assert [m["content"] for m in messages(data_dir, chat["id"])] == ["saved before"]


def test_a_nearly_full_disk_is_one_sentence(data_dir: Path, tmp_path: Path) -> None:
    if not _namespaces_work():
        pytest.fail("this test mounts a small tmpfs in a user namespace: `unshare -rm` must "
                    "work here (util-linux, unprivileged user namespaces)")
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    # A 4 MB disk for the data dir: create the database, fill the disk, then free 48 KB:
    # enough to open the database, not enough to store a chat.
    fill = (f'mount -t tmpfs -o size=4m tmpfs "{data_dir}" && "$@" history list >/dev/null '
            f'&& (dd if=/dev/zero of="{data_dir}/filler" bs=4k 2>/dev/null; true) '
            f'&& truncate -s -48k "{data_dir}/filler" '
            f'&& "$@" chat --model "{tiny}" "will not fit"; echo "exit $?" >&2; '
            f'"$@" history list --json')
    out = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", fill,
                          "sh", *MAIN, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=240, cwd=REPO)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "exit 1", out.stderr
    assert lines[0].startswith("hearth: ") and "disk is full" in lines[0], out.stderr
    assert json.loads(out.stdout) == []  # nothing half-written, no empty chat


# --- damaged settings ------------------------------------------------------------------
def test_a_damaged_settings_file_starts_with_defaults_and_says_so_once(data_dir: Path) -> None:
    settings = data_dir / "settings.json"
    settings.write_text("[" * 100_000 + "]" * 100_000)
    first = hearth(data_dir, "history", "list")
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    [notice] = first.stderr.strip().splitlines()
    assert notice.startswith("hearth: The settings file") and "default settings" in notice
    assert (data_dir / "settings.json.bad").stat().st_size == 200_000  # kept, not deleted
    again = hearth(data_dir, "history", "list")
    assert again.returncode == 0 and again.stderr == ""  # said once


def test_the_window_starts_with_a_damaged_settings_file_and_says_so(data_dir: Path,
                                                                    qtbot) -> None:
    from desktop.app import build_window

    (data_dir / "settings.json").write_text("{" * 100_000)
    window = build_window(data_dir)
    qtbot.addWidget(window)
    try:
        assert "default settings" in window.error_label.full_text()
        assert window.ctx.settings.get("n_ctx") == 4096  # the defaults
    finally:
        window.ctx.close()
