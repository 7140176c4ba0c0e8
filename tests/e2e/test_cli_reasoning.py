"""The real CLI with the real test model under reasoning models' real chat templates."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import hearth
from tests.gguf_files import with_chat_template

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
# Gemma 3 270M (a base model) repeats its prompt; DeepSeek-R1's template opens <think> in the
# generation prompt, so the reply starts as thinking until the repeated </think> closes it.
ASK = "Repeat exactly: I should add them.</think>The answer is 4."


def model_with(gemma_path: Path, tmp_path: Path, name: str) -> Path:
    template = (TEMPLATES / name).read_text(encoding="utf-8")
    return with_chat_template(gemma_path, tmp_path / f"gemma-{name}.gguf", template)


def test_chat_json_prints_thinking_apart_and_export_keeps_it_on_request(
        data_dir: Path, gemma_path: Path, tmp_path: Path) -> None:
    model = model_with(gemma_path, tmp_path, "deepseek-r1-distill-qwen.jinja")
    run = hearth(data_dir, "chat", "--model", str(model), "--temperature", "0",
                 "--max-tokens", "24", "--json", "--show-thinking", ASK)
    out = json.loads(run.stdout)
    assert out["state"] == "done"
    assert out["reasoning"] and out["reply"]
    for field in (out["reasoning"], out["reply"]):
        assert "<think>" not in field and not field.startswith("</think>")
    assert "</think>" not in out["reasoning"]
    assert out["reasoning_s"] is not None
    assert out["reasoning"] in run.stderr  # --show-thinking streamed it to stderr
    assert out["reply"] not in run.stderr

    conversation = str(out["conversation_id"])
    plain = json.loads(hearth(data_dir, "history", "export", conversation,
                              "--format", "json").stdout)
    assert all("reasoning" not in m for m in plain["messages"])
    full = json.loads(hearth(data_dir, "history", "export", conversation, "--format", "json",
                             "--with-thinking").stdout)
    reply = full["messages"][-1]
    assert (reply["reasoning"], reply["content"]) == (out["reasoning"], out["reply"])
    markdown = hearth(data_dir, "history", "export", conversation, "--with-thinking").stdout
    assert "<summary>Thinking" in markdown and out["reasoning"] in markdown
    assert out["reasoning"] not in hearth(data_dir, "history", "export", conversation).stdout

    # Without --json the answer goes to stdout and only the answer; the template has no switch,
    # so --no-think says that it thought anyway.
    follow = hearth(data_dir, "chat", "--continue", "--max-tokens", "24", "--no-think", ASK)
    shown = json.loads(hearth(data_dir, "history", "show", conversation, "--json").stdout)
    assert follow.stdout.strip() == shown["messages"][-1]["content"].strip()
    assert "no switch for thinking" in follow.stderr


def test_no_think_reaches_the_qwen3_template(data_dir: Path, gemma_path: Path,
                                            tmp_path: Path) -> None:
    model = model_with(gemma_path, tmp_path, "qwen3-0.6b.jinja")
    out = json.loads(hearth(data_dir, "chat", "--model", str(model), "--temperature", "0",
                            "--max-tokens", "12", "--json", "--no-think", "Hi").stdout)
    # The template closed an empty <think> in the prompt: the whole reply is the answer.
    assert out["reasoning"] is None and out["reply"]
    assert "think>" not in out["reply"]
    shown = json.loads(hearth(data_dir, "history", "show", str(out["conversation_id"]),
                              "--json").stdout)
    assert shown["settings"]["thinking"] is False
