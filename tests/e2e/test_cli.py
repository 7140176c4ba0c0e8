"""The real CLI in real processes: chat, history, errors, and a SIGKILL mid-reply."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.gguf_files import write_small_gguf

REPO = Path(__file__).resolve().parents[2]


def hearth(data_dir: Path, *args: str, check: bool = True, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=240, cwd=cwd or REPO, env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"hearth {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_version() -> None:
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Hearth ")


def test_chat_continue_history_and_export(data_dir: Path, gemma_path: Path,
                                          tmp_path: Path) -> None:
    first = json.loads(hearth(data_dir, "chat", "--model", str(gemma_path), "--temperature", "0",
                              "--max-tokens", "16", "--json", "What is the capital of France?"
                              ).stdout)
    for key in ("conversation_id", "reply", "prompt_tokens", "cached_tokens",
                "completion_tokens", "ttft_s", "tokens_per_s", "stop_reason"):
        assert key in first
    assert first["reply"] and first["completion_tokens"] > 0
    assert first["base_model"] is True

    # --model defaults to the model used last; --continue extends the same conversation.
    second = json.loads(hearth(data_dir, "chat", "--continue", "--max-tokens", "8", "--json",
                               "And of Italy?").stdout)
    assert second["conversation_id"] == first["conversation_id"]
    assert second["model"] == str(gemma_path)

    listing = json.loads(hearth(data_dir, "history", "list", "--json").stdout)
    assert [c["id"] for c in listing] == [first["conversation_id"]]
    assert listing[0]["title"] == "What is the capital of France?"
    shown = json.loads(hearth(data_dir, "history", "show", str(first["conversation_id"]),
                              "--json").stdout)
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant", "user", "assistant"]
    assert shown["messages"][1]["content"] == first["reply"]
    assert all(m["state"] == "done" for m in shown["messages"])

    md = tmp_path / "chat.md"
    hearth(data_dir, "history", "export", str(first["conversation_id"]), "--format", "md",
           "-o", str(md))
    text = md.read_text()
    assert "What is the capital of France?" in text and "And of Italy?" in text
    exported = json.loads(hearth(data_dir, "history", "export", str(first["conversation_id"]),
                                 "--format", "json").stdout)
    assert exported["messages"][3]["content"] == second["reply"]


def test_plain_chat_streams_to_stdout(data_dir: Path, gemma_path: Path) -> None:
    out = hearth(data_dir, "chat", "--model", str(gemma_path), "--max-tokens", "12",
                 "--seed", "7", "Hello")
    assert out.stdout.strip()
    assert out.stderr == "" or "Traceback" not in out.stderr


def test_chat_uses_the_library_model_when_none_was_chosen(data_dir: Path, gemma_path: Path,
                                                          embed_model_path: Path) -> None:
    import json

    (data_dir / "settings.json").write_text(json.dumps({"starter_registered": True}))
    hearth(data_dir, "models", "add", str(embed_model_path))
    refused = hearth(data_dir, "chat", "hi", check=False)  # an embedding model cannot chat
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    hearth(data_dir, "models", "add", str(gemma_path))
    out = json.loads(hearth(data_dir, "chat", "--max-tokens", "3", "--json", "Hello").stdout)
    assert out["completion_tokens"] == 3
    settings = json.loads((data_dir / "settings.json").read_text())
    assert settings["last_model"] == str(gemma_path)


def test_errors_are_one_line_without_traceback(data_dir: Path, tmp_path: Path) -> None:
    missing = hearth(data_dir, "chat", "--model", str(tmp_path / "nope.gguf"), "hi", check=False)
    assert missing.returncode != 0
    assert "Cannot open model file" in missing.stderr and "Traceback" not in missing.stderr
    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_text("hello " * 100)
    bad = hearth(data_dir, "chat", "--model", str(not_gguf), "hi", check=False)
    assert bad.returncode != 0 and "is not a GGUF model" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = hearth(data_dir, "history", "show", "999", check=False)
    assert unknown.returncode != 0 and "no conversation 999" in unknown.stderr
    cold = hearth(data_dir, "chat", "--temperature", "-5", "hi", check=False)
    assert cold.returncode == 2 and "-5 is out of range" in cold.stderr
    tiny = hearth(data_dir, "chat", "--ctx", "10", "hi", check=False)
    assert tiny.returncode == 2 and "at least 256" in tiny.stderr


def test_a_message_longer_than_the_context_is_explained(data_dir: Path,
                                                       gemma_path: Path) -> None:
    out = hearth(data_dir, "chat", "--model", str(gemma_path), "--ctx", "256",
                 "--max-tokens", "4", "word " * 600, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "but the model's context holds 256. Shorten it" in out.stderr
    shown = hearth(data_dir, "history", "show", "1", "--json").stdout
    assert "word word" in shown  # the message itself is kept


def test_export_to_an_unwritable_place_is_one_line(data_dir: Path, gemma_path: Path,
                                                  tmp_path: Path) -> None:
    hearth(data_dir, "chat", "--model", str(gemma_path), "--max-tokens", "2", "Hello")
    target = tmp_path / "no-such-folder" / "chat.md"
    out = hearth(data_dir, "history", "export", "1", "--format", "md", "-o", str(target),
                 check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"hearth: No such file or directory: {target}"


def test_model_whose_template_runs_code_is_refused(data_dir: Path, tmp_path: Path) -> None:
    evil = write_small_gguf(
        tmp_path / "evil.gguf",
        chat_template="{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}")
    work = tmp_path / "cwd"
    work.mkdir()
    result = hearth(data_dir, "chat", "--model", str(evil), "hi", check=False, cwd=work)
    assert result.returncode != 0
    assert "chat template tried to run code" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (work / "PWNED").exists() and not (REPO / "PWNED").exists()


def _wait_for_row(db_path: Path, sql: str, process: subprocess.Popen) -> tuple:
    """The first row `sql` returns, read from the running app's database; waits for that
    event (or the process's exit, which fails the test), never for a fixed time."""
    while True:
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
                row = conn.execute(sql).fetchone()
            if row:
                return row
        except sqlite3.Error:
            pass  # the database or its tables do not exist yet
        try:
            process.wait(timeout=0.02)  # returns at once if hearth exits; else look again
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"hearth exited ({process.returncode}) before: {sql}\n"
                             + process.stderr.read().decode(errors="replace"))


def test_sigkill_mid_reply_keeps_the_partial_reply(data_dir: Path, gemma_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), "chat",
         # Greedy decoding of this prompt loops without an end token (checked: 600 of 600
         # tokens), so the reply is still streaming when it is killed.
         "--model", str(gemma_path), "--max-tokens", "4000", "--temperature", "0",
         "Count from 1 to 1000: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
    )
    db = data_dir / "hearth.sqlite3"
    try:
        reply_id, first = _wait_for_row(
            db, "SELECT id, content FROM messages WHERE role='assistant' AND "
            "state='streaming' AND length(content) > 0", process)
        # A later save of the same streaming reply: the text is written while it streams,
        # not only at the end. Whatever was on disk at the kill must survive it.
        (snapshot,) = _wait_for_row(
            db, f"SELECT content FROM messages WHERE id={reply_id} AND state='streaming' "
            f"AND length(content) > {len(first)}", process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)  # start-up turns `streaming` into `interrupted`
    try:
        conversation = ctx.chats.conversations()[0]
        messages = ctx.chats.messages(conversation.id)
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[0].content.startswith("Count from 1 to 1000")
        reply = messages[1]
        assert reply.state == "interrupted"
        assert reply.content.startswith(snapshot) and snapshot.startswith(first)
    finally:
        ctx.close()


def test_data_goes_to_the_user_data_dir_never_the_install_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_DATA_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    before = {p for p in REPO.rglob("*") if ".git" not in p.parts}
    subprocess.run([sys.executable, str(REPO / "main.py"), "history", "list"], env=env,
                   check=True, capture_output=True, timeout=60)
    assert (tmp_path / "xdg" / "Hearth" / "hearth.sqlite3").is_file()
    after = {p for p in REPO.rglob("*") if ".git" not in p.parts}
    assert {p for p in after - before if "__pycache__" not in p.parts} == set()
    # and the variable wins over the platform default
    env["HEARTH_DATA_DIR"] = str(tmp_path / "custom")
    subprocess.run([sys.executable, str(REPO / "main.py"), "history", "list"], env=env,
                   check=True, capture_output=True, timeout=60)
    assert (tmp_path / "custom" / "hearth.sqlite3").is_file()
