"""`hearth history import` in real processes: detection, --dry-run, --json, idempotency,
damaged files reported in one sentence each, and LocalDocs folders indexed."""

from __future__ import annotations

import json
from pathlib import Path

from tests import import_samples as samples
from tests.e2e.test_cli import hearth


def test_import_every_app_twice(data_dir: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text("# Manual\n\nThe flux capacitor needs 1.21 gigawatts.\n",
                                    encoding="utf-8")
    sources = {"gpt4all": samples.write_gpt4all(tmp_path / "GPT4All", docs),
               "chatgpt": samples.write_chatgpt(tmp_path / "export"),
               "lmstudio": samples.write_lmstudio(tmp_path / "lmstudio"),
               "jan": samples.write_jan(tmp_path / "jan"),
               "openwebui": samples.write_openwebui(tmp_path / "owui")}

    dry = json.loads(hearth(data_dir, "history", "import", str(sources["chatgpt"]), "--dry-run",
                            "--json").stdout)
    assert dry["app"] == "chatgpt" and dry["dry_run"] is True
    assert [(c["title"], c["messages"], c["status"]) for c in dry["conversations"]] == [
        ("Planning a trip to Kraków 🇵🇱", 2, "new"), ("Chart", 2, "new"),
        ("New chat", 0, "empty")]
    assert dry["problems"] == [{"where": dry["source"] + " (conversation 4)",
                                "error": "it has no message mapping."}]
    assert json.loads(hearth(data_dir, "history", "list", "--json").stdout) == []

    imported = {}
    for app, path in sources.items():
        result = hearth(data_dir, "history", "import", str(path), "--from", app, "--json")
        imported[app] = json.loads(result.stdout)
    assert {app: len(r["imported"]) for app, r in imported.items()} == {
        "gpt4all": 2, "chatgpt": 2, "lmstudio": 2, "jan": 1, "openwebui": 2}
    [collection] = imported["gpt4all"]["collections"]
    assert collection["name"] == "Recherche ü" and collection["indexed"] == 1
    hits = json.loads(hearth(data_dir, "docs", "search", "gigawatts", "--collection",
                             "Recherche ü", "--mode", "bm25", "--json").stdout)
    assert hits and "flux capacitor" in hits[0]["text"]

    listed = json.loads(hearth(data_dir, "history", "list", "--json").stdout)
    assert len(listed) == 9
    trip = next(c for c in listed if c["title"] == "Planning a trip to Kraków 🇵🇱")
    assert trip["updated_at"] == samples.T0 + 500.25 and trip["messages"] == 2
    shown = json.loads(hearth(data_dir, "history", "show", str(trip["id"]), "--json").stdout)
    assert [(m["role"], m["content"], m["created_at"]) for m in shown["messages"]] == [
        ("user", samples.MULTILINE, samples.T0 + 100),
        ("assistant", "Wawel Castle — definitely.\nAnd pierogi.", samples.T0 + 110)]

    # Plain text, detected, a second time: nothing new, damaged files named on stderr.
    again = hearth(data_dir, "history", "import", str(sources["jan"]))
    assert "Imported 0 conversations (0 messages); 1 already imported, 1 empty skipped." \
        in again.stdout
    assert "messages.jsonl line 3: this message is not valid JSON" in again.stderr
    assert "its thread.json could not be read" in again.stderr
    assert "Traceback" not in again.stderr
    for path in sources.values():
        second = json.loads(hearth(data_dir, "history", "import", str(path), "--json").stdout)
        assert second["imported"] == []
    assert len(json.loads(hearth(data_dir, "history", "list", "--json").stdout)) == 9


def test_import_refuses_what_it_cannot_read(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "notes.json"
    other.write_text("[1, 2, 3]", encoding="utf-8")
    result = hearth(data_dir, "history", "import", str(other), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("hearth: Hearth found no chats it knows how to import in")
    assert len(result.stderr.strip().splitlines()) == 1
    missing = hearth(data_dir, "history", "import", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "There is no file or folder" in missing.stderr
    forced = hearth(data_dir, "history", "import", str(other), "--from", "chatgpt", check=False)
    assert forced.returncode == 1
    assert "it is not a ChatGPT conversations.json" in forced.stderr
    assert "Traceback" not in forced.stderr
