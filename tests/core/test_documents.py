"""Documents: extraction with locations, bad input per file, incremental indexing, retrieval."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.core.documents.chunk import chunk_sections, count_tokens
from desktop.core.documents.extract import extract
from desktop.core.documents.index import DocumentIndex, IndexLimits
from desktop.core.documents.retrieve import search
from desktop.core.store.db import Database
from tests.doc_corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def index(tmp_path: Path) -> DocumentIndex:
    return DocumentIndex(Database(tmp_path / "docs.sqlite3"))


def test_extraction_keeps_locations(corpus: dict[str, Path]) -> None:
    pdf = extract(corpus["pdf"], 10**8)
    assert {s.page for s in pdf} == {1, 2, 3}
    assert any("25 days of paid vacation" in s.text and s.page == 1 for s in pdf)
    docx = extract(corpus["docx"], 10**8)
    assert any("water damage" in s.text and s.heading == "Aurora X2 headphones > Warranty"
               for s in docx)
    md = extract(corpus["md"], 10**8)
    tart = next(s for s in md if "170 degrees" in s.text)
    assert tart.heading == "Recipes > Lemon tart" and tart.line_start == 5
    txt = extract(corpus["txt"], 10**8)
    assert any("November 14" in s.text and s.line_start == 3 for s in txt)
    html = extract(corpus["html"], 10**8)
    assert any("600 requests" in s.text and s.heading == "API guide > Rate limits" for s in html)
    assert not any("var x" in s.text for s in html)  # scripts are not text
    code = extract(corpus["code"], 10**8)
    assert any("seven backups" in s.text and s.line_start == 4 for s in code)


def test_text_in_the_encodings_people_have(tmp_path: Path) -> None:
    sentence = "Café crème brûlée, “quoted”, 20 € résumé."
    samples = {
        "utf8.txt": sentence.encode("utf-8"),
        "utf8-bom.txt": b"\xef\xbb\xbf" + sentence.encode("utf-8"),
        "notepad-unicode.txt": sentence.encode("utf-16"),  # with its byte-order mark
        "utf16-be.txt": b"\xfe\xff" + sentence.encode("utf-16-be"),
        "utf32.txt": sentence.encode("utf-32"),
        "windows-1252.txt": sentence.encode("cp1252"),
        # Even length: an earlier reader decoded such legacy files as UTF-16 noise.
        "latin1-even.txt": "Crème brûlée ok".encode("latin-1"),
    }
    for name, raw in samples.items():
        (tmp_path / name).write_bytes(raw)
        text = " ".join(section.text for section in extract(tmp_path / name, 10**6))
        expected = "Crème brûlée ok" if name.startswith("latin1") else sentence
        assert text.strip() == expected, name


def test_chunks_have_bounded_size_overlap_and_locations(corpus: dict[str, Path]) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    sections = extract(corpus["md"], 10**8)
    from desktop.core.documents.extract import Section

    chunks = chunk_sections([Section(text, line_start=1, line_end=1)], size=120, overlap=30)
    assert len(chunks) > 5
    assert all(c.tokens <= 120 + 10 for c in chunks)
    # consecutive chunks share their boundary sentences (the overlap)
    assert chunks[0].text.split(".")[-2] in chunks[1].text
    md_chunks = chunk_sections(sections, size=60, overlap=10)
    assert any(c.heading == "Recipes > Focaccia" and "12 hours" in c.text for c in md_chunks)
    assert count_tokens("Hello, world!") == 4


def test_bad_input_gets_a_reason_per_file(tmp_path: Path, corpus: dict[str, Path],
                                          index: DocumentIndex) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 100)
    (bad / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    (bad / "photo.png").write_bytes(b"\x89PNG\r\n")
    huge = bad / "huge.txt"
    with huge.open("wb") as handle:  # a sparse 500 MB file: the size limit stops it unread
        handle.truncate(500 * 1024 * 1024)
    from fpdf import FPDF

    scanned = FPDF()
    scanned.add_page()
    scanned.rect(10, 10, 100, 100)  # a page with a drawing and no text layer
    scanned.output(str(bad / "scan.pdf"))
    encrypted = FPDF()
    encrypted.set_encryption(owner_password="owner", user_password="secret")
    encrypted.add_page()
    encrypted.set_font("Helvetica", size=12)
    encrypted.cell(0, 10, "Top secret")
    encrypted.output(str(bad / "locked.pdf"))
    (bad / "dangling.md").symlink_to(bad / "nowhere.md")
    good = bad / "good.md"
    good.write_text("# Good\n\nThis file is fine and mentions pelicans.\n")

    collection = index.create_collection("mixed")
    state = index.add_paths(collection, [bad, tmp_path / "missing-folder"],
                            limits=IndexLimits(max_file_mb=100))
    errors = {Path(p).name: e for p, e in state.errors}
    assert "empty" in errors["empty.txt"]
    assert "binary" in errors["binary.txt"]
    assert "damaged" in errors["broken.pdf"]
    assert "not supported" in errors["photo.png"]
    assert "524 MB is over the 100 MB limit" in errors["huge.txt"]
    assert "no text layer" in errors["scan.pdf"]
    assert "encrypted" in errors["locked.pdf"]
    assert "cannot be read" in errors["dangling.md"]
    assert "no such file or folder" in errors["missing-folder"]
    documents = {Path(d["path"]).name: d for d in index.documents(collection)}
    assert documents["good.md"]["status"] == "indexed"  # the rest of the batch went on
    assert documents["locked.pdf"]["status"] == "failed"
    assert documents["photo.png"]["status"] == "skipped"
    assert search(index.db, "pelicans", [collection], k=1)[0].path == str(good)
    assert state.indexed == 1  # only good.md; failures and the missing folder do not count
    assert index.paths(collection) == [str(bad)]  # the mistyped folder is not kept


def test_cli_says_when_nothing_could_be_indexed(tmp_path: Path, data_dir: Path) -> None:
    import json

    cmd = [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), "docs", "add",
           str(tmp_path / "nope"), "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["indexed"] == 0
    assert report["errors"] == [{"path": str(tmp_path / "nope"),
                                 "error": "no such file or folder."}]


def test_incremental_reindex(tmp_path: Path, corpus: dict[str, Path],
                             index: DocumentIndex) -> None:
    collection = index.create_collection("c")
    folder = corpus["md"].parent
    first = index.add_paths(collection, [folder])
    assert first.files_done == 6 and not first.errors and first.chunks_done > 6
    again = index.add_paths(collection, [folder])
    assert again.skipped_unchanged == 6 and again.chunks_done == 0
    corpus["txt"].write_text("Weekly sync\n\nThe billing migration moved to December 2.\n")
    corpus["md"].unlink()
    third = index.reindex(collection)
    assert third.skipped_unchanged == 4 and third.removed == 1
    hits = search(index.db, "billing migration", [collection], k=1)
    assert "December 2" in hits[0].text
    assert not search(index.db, "focaccia", [collection], k=3)


def test_killed_indexing_loses_at_most_one_file(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        (folder / f"note-{i:03}.md").write_text(
            f"# Note {i}\n\n" + f"Paragraph about item {i} and its details. " * 400)
    cmd = [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), "docs", "add",
           str(folder), "--collection", "notes"]
    env = {**os.environ}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = data_dir / "hearth.sqlite3"
    deadline = time.monotonic() + 60
    indexed = 0
    while time.monotonic() < deadline and indexed < 5:
        time.sleep(0.05)
        if db_path.exists():
            try:
                indexed = Database(db_path).query(
                    "SELECT COUNT(*) AS n FROM documents WHERE status='indexed'")[0]["n"]
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                indexed = 0
    process.kill()
    process.wait(10)
    db = Database(db_path)
    done = db.query("SELECT COUNT(*) AS n FROM documents")[0]["n"]
    assert 5 <= done <= 60  # a fast machine may finish before the kill lands: still checked
    # every document row that exists is complete: its chunks are all there
    broken = db.query("SELECT d.path FROM documents d WHERE d.chunk_count != "
                      "(SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id)")
    assert broken == []
    db.close()
    result = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True,
                            timeout=240)
    import json

    report = json.loads(result.stdout)
    assert report["unchanged"] == done and report["indexed"] == 60 - done
