"""Hostile documents (issue 10, items 6-8 and the low ones): zip bombs, pipes, devices, link
loops, non-UTF-8 names, absurdly deep HTML and unreadable folders. Every file here is real
(written with zipfile, os.mkfifo, os.symlink, bytes paths) and goes through the real indexer
or the real CLI: each bad file gets its own one-sentence reason and the files beside it are
indexed. Nothing is large: the bombs claim their size or are a few MB of zeros."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.documents.extract import DocumentError, extract, read_file
from desktop.core.documents.index import DocumentIndex, IndexLimits
from desktop.core.documents.retrieve import search
from desktop.core.store.db import Database
from tests.doc_corpus import lying_zip_bomb_docx, write_docx, zeros_zip_bomb_docx

REPO = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and byte file "
                                "names are POSIX things")


@pytest.fixture
def index(tmp_path: Path) -> DocumentIndex:
    return DocumentIndex(Database(tmp_path / "docs.sqlite3"))


def one_sentence(text: str) -> bool:
    return ("\n" not in text and text.endswith(".") and "Traceback" not in text
            and "Error:" not in text.split(":", 1)[0])


def errors_by_name(errors: list[tuple[str, str]]) -> dict[str, str]:
    named = {Path(path).name: error for path, error in errors}
    assert len(named) == len(errors), errors  # one entry per file, no duplicates
    assert all(one_sentence(e) for e in named.values()), named
    return named


def test_zip_bomb_docx_is_refused_from_its_central_directory(tmp_path: Path,
                                                             index: DocumentIndex) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    lying = lying_zip_bomb_docx(folder / "lying.docx")  # claims 4 GB, stores 32 bytes
    zeros = zeros_zip_bomb_docx(folder / "zeros.docx", 20)  # 20 MB of zeros in ~50 KB
    assert lying.stat().st_size < 100_000 and zeros.stat().st_size < 200_000
    write_docx(folder / "fine.docx", "The quarterly pelican census counted 412 birds.")

    with pytest.raises(DocumentError) as caught:
        extract(lying, 100_000_000)
    assert "would expand to 4,296 MB when unpacked, over the 100 MB limit" in caught.value.message
    # Under the total limit, the ratio gives a genuine bomb away before anything inflates.
    with pytest.raises(DocumentError) as caught:
        extract(zeros, 100_000_000)
    assert "word/media/zeros.bin is compressed" in caught.value.message
    assert "likely zip bomb" in caught.value.message
    with pytest.raises(DocumentError) as caught:
        extract(zeros, 10_000_000)
    assert caught.value.message.startswith("zeros.docx: it would expand to 2")  # 20 MB + parts
    assert "MB when unpacked, over the 10 MB limit for one file" in caught.value.message

    collection = index.create_collection("bombs")
    state = index.add_paths(collection, [folder], limits=IndexLimits(max_file_mb=100))
    errors = errors_by_name(state.errors)
    assert set(errors) == {"lying.docx", "zeros.docx"}
    assert all("zip bomb" in e for e in errors.values())
    documents = {Path(d["path"]).name: d["status"] for d in index.documents(collection)}
    assert documents == {"fine.docx": "indexed", "lying.docx": "failed", "zeros.docx": "failed"}
    assert search(index.db, "pelican census", [collection], k=1)[0].path.endswith("fine.docx")


def test_a_docx_that_is_not_a_zip_is_damaged_not_a_crash(tmp_path: Path) -> None:
    fake = tmp_path / "fake.docx"
    fake.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    with pytest.raises(DocumentError) as caught:
        extract(fake, 10**6)
    assert "damaged or not a valid DOCX" in caught.value.message
    assert one_sentence(caught.value.message)


@posix_only
@pytest.mark.timeout(120)  # the old indexer blocked forever on the first two files here
def test_pipes_devices_and_link_loops_each_get_a_reason_and_never_hang(
        tmp_path: Path, index: DocumentIndex) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "ping.md").symlink_to(folder / "pong.md")
    (folder / "pong.md").symlink_to(folder / "ping.md")
    (folder / "self.txt").symlink_to(folder / "self.txt")
    (folder / "sub" / "up").symlink_to(folder)  # a folder link back up the tree
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "far.md").write_text("# Far\n\nNot indexed through a link.\n")
    (folder / "linked").symlink_to(other)
    (folder / "sub" / "good.md").write_text("# Good\n\nThe good file mentions flamingos.\n")
    (folder / "real.txt").write_text("Plain text about herons.\n")
    (folder / "alias.txt").symlink_to(folder / "real.txt")  # a link to a file: indexed
    lone_fifo = tmp_path / "lone.md"
    os.mkfifo(lone_fifo)  # named on its own, not found by a walk

    collection = index.create_collection("hostile")
    state = index.add_paths(collection, [folder, lone_fifo])
    errors = errors_by_name(state.errors)
    assert errors["pipe.txt"] == ("pipe.txt: skipped, it is a named pipe (FIFO), not a regular "
                                  "file (Hearth reads only regular files).")
    assert errors["lone.md"].startswith("lone.md: skipped, it is a named pipe (FIFO)")
    assert errors["zero.txt"].startswith("zero.txt: skipped, it is a device")
    for name in ("ping.md", "pong.md", "self.txt"):
        assert errors[name] == (f"{name}: skipped, it is a symbolic link loop (the link never "
                                "reaches a file).")
    assert errors["up"].startswith("up: skipped, it is a symbolic link loop (it leads back")
    assert errors["linked"].startswith("linked: skipped, it is a link to another folder")
    assert len(errors) == 8
    documents = {Path(d["path"]).name: d["status"] for d in index.documents(collection)}
    assert documents["good.md"] == documents["real.txt"] == documents["alias.txt"] == "indexed"
    assert documents["pipe.txt"] == documents["zero.txt"] == documents["self.txt"] == "skipped"
    assert "far.md" not in documents
    assert state.indexed == 3
    assert search(index.db, "flamingos", [collection], k=1)[0].path.endswith("good.md")


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc")
def test_the_size_limit_holds_while_reading_not_only_by_stat(tmp_path: Path) -> None:
    # /proc files say they are 0 bytes long and are not: only a bounded read catches them.
    link = tmp_path / "maps.txt"
    link.symlink_to("/proc/self/maps")
    assert link.stat().st_size == 0
    with pytest.raises(DocumentError) as caught:
        read_file(link, 64)
    assert caught.value.message == ("maps.txt: the file grew past the 0 MB limit for one file "
                                    "while it was being read.")


def _bytes_name(folder: Path, name: bytes) -> Path:
    """A file name that is not valid UTF-8, written through a bytes path; as Python lists it."""
    try:
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(b"")
    except OSError as exc:  # macOS (APFS) refuses such names outright
        pytest.skip(f"this file system refuses non-UTF-8 file names ({exc})")
    return folder / os.fsdecode(name)


@posix_only
def test_non_utf8_file_names_are_indexed_found_and_removed(tmp_path: Path,
                                                          index: DocumentIndex) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    good = _bytes_name(folder, b"caf\xe9-notes.txt")
    good.write_bytes(b"The espresso machine in the caf\xc3\xa9 is descaled on Mondays.\n")
    empty = _bytes_name(folder, b"vide\xff.txt")  # bad content and a bad name together
    (folder / "plain.md").write_text("# Plain\n\nAn ordinary file about otters.\n")
    nested = Path(os.fsdecode(os.path.join(os.fsencode(folder), b"dossier-\xe9")))
    nested.mkdir()
    (nested / "inside.txt").write_text("Inside a folder with a non-UTF-8 name: walruses.\n")

    collection = index.create_collection("bytes")
    state = index.add_paths(collection, [folder])
    errors = errors_by_name(state.errors)
    assert errors == {"vide\\xff.txt": "vide\\xff.txt: the file is empty."}
    assert state.indexed == 3
    hit = search(index.db, "espresso descaled", [collection], k=1)[0]
    assert hit.location().startswith("caf\\xe9-notes.txt, lines 1-1")
    assert search(index.db, "walruses", [collection], k=1)[0].text.startswith("Inside")

    again = index.add_paths(collection, [folder])  # nothing changed: nothing is re-read
    assert again.skipped_unchanged == 3 and again.indexed == 0

    # A root whose own name is not UTF-8 is remembered and walked again by reindex.
    other = index.create_collection("byte-root")
    index.add_paths(other, [nested])
    assert index.reindex(other).skipped_unchanged == 1
    (nested / "inside.txt").unlink()
    assert index.reindex(other).removed == 1

    assert index.remove_paths(collection, [good]) == 1  # given as the file system names it
    stored = {d["path"] for d in index.documents(collection)}
    assert not any("espresso" in r.text for r in search(index.db, "espresso", [collection]))
    assert index.remove_paths(collection, [next(p for p in stored if "vide" in p)]) == 1
    assert empty.exists() and good.exists()  # the index forgets, the files stay


@pytest.mark.timeout(120)
def test_html_nested_100000_levels_is_read_in_proportion_to_its_size(tmp_path: Path) -> None:
    depth = 100_000
    page = tmp_path / "deep.html"
    page.write_text("<html><body><h1>Abyss</h1>" + "<div>" * depth + "<p>The bottom of the "
                    "trench holds anglerfish.</p>" + "</div>" * depth + "</body></html>")
    quotes = tmp_path / "quotes.html"
    quotes.write_text("<blockquote>" * depth + "Quoted all the way down." + "<li>" * depth)
    sections = extract(page, 10**8)
    assert [(s.text, s.heading) for s in sections] == [
        ("Abyss", "Abyss"), ("The bottom of the trench holds anglerfish.", "Abyss")]
    assert [s.text for s in extract(quotes, 10**8)] == ["Quoted all the way down."]
    # A page as people save them still goes through the HTML5 tree (scripts dropped).
    normal = tmp_path / "normal.html"
    normal.write_text("<html><head><script>var secret = 1;</script></head><body><h1>Guide</h1>"
                      "<p>Read me &amp; enjoy.</p></body></html>")
    assert [s.text for s in extract(normal, 10**6)] == ["Guide", "Read me & enjoy."]


def _drop_file_permission_bypass() -> None:
    """In the child before exec: remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so root, too, is refused a folder with mode 000."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_cli(args: list[str], as_root_without_bypass: bool = False,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
        timeout=240, cwd=REPO, encoding="utf-8",
        preexec_fn=_drop_file_permission_bypass if as_root_without_bypass else None)


@posix_only
@pytest.mark.timeout(300)
def test_cli_docs_add_lists_every_hostile_file_and_indexes_the_rest(tmp_path: Path,
                                                                    data_dir: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "loop.md").symlink_to(folder / "loop.md")
    lying_zip_bomb_docx(folder / "bomb.docx")
    (folder / "deep.html").write_text("<div>" * 100_000 + "<p>Deep but harmless.</p>")
    named = _bytes_name(folder, b"r\xe9sum\xe9.txt")
    named.write_text("A résumé written in a Latin-1 terminal mentions puffins.\n")
    (folder / "good.md").write_text("# Good\n\nThe good file mentions penguins.\n")

    result = _run_cli(["--data-dir", str(data_dir), "docs", "add", str(folder), "--collection",
                       "hostile", "--json"])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    errors = errors_by_name([(e["path"], e["error"]) for e in report["errors"]])
    assert set(errors) == {"pipe.txt", "zero.txt", "loop.md", "bomb.docx"}
    assert "named pipe" in errors["pipe.txt"] and "device" in errors["zero.txt"]
    assert "symbolic link loop" in errors["loop.md"] and "zip bomb" in errors["bomb.docx"]
    assert report["indexed"] == 3  # good.md, deep.html and the non-UTF-8 name

    listing = _run_cli(["--data-dir", str(data_dir), "docs", "list", "--collection", "hostile"])
    assert listing.returncode == 0 and "r\\xe9sum\\xe9.txt" in listing.stdout
    search_out = _run_cli(["--data-dir", str(data_dir), "docs", "search", "puffins",
                           "--collection", "hostile", "--mode", "bm25"])
    assert "r\\xe9sum\\xe9.txt, lines 1-1" in search_out.stdout

    # Without --json each problem is one line on stderr, marked skipped or failed.
    again = _run_cli(["--data-dir", str(data_dir), "docs", "add", str(folder), "--collection",
                      "hostile"])
    lines = [line for line in again.stderr.splitlines() if line.startswith("  ")]
    assert f"  skipped: {folder / 'pipe.txt'}: pipe.txt: skipped, it is a named pipe" \
        in "\n".join(lines)
    assert any(line.startswith(f"  failed: {folder / 'bomb.docx'}: ") for line in lines)
    assert len(lines) == 4 and "3 unchanged" in again.stdout


@posix_only
@pytest.mark.timeout(300)
def test_an_unreadable_sub_folder_is_listed_with_its_reason(tmp_path: Path,
                                                            data_dir: Path) -> None:
    folder = tmp_path / "docs"
    locked = folder / "locked"
    locked.mkdir(parents=True)
    (locked / "secret.md").write_text("# Secret\n\nHidden from the indexer.\n")
    (folder / "open.md").write_text("# Open\n\nAnyone may read about gannets.\n")
    as_root = os.geteuid() == 0
    locked.chmod(0)
    try:
        probe = subprocess.run([sys.executable, "-c", f"import os; os.listdir({str(locked)!r})"],
                               capture_output=True, text=True, timeout=60,
                               preexec_fn=_drop_file_permission_bypass if as_root else None)
    except subprocess.SubprocessError as exc:  # prctl refused: no CAP_SETPCAP here
        locked.chmod(0o755)
        pytest.skip(f"running as root, and root cannot give up its permission bypass here "
                    f"({exc}), so no folder can be made unreadable to it")
    try:
        if "PermissionError" not in probe.stderr:
            pytest.skip("running as root, which reads a mode-000 folder anyway even without "
                        "CAP_DAC_OVERRIDE here, so no folder can be made unreadable")
        result = _run_cli(["--data-dir", str(data_dir), "docs", "add", str(folder),
                           "--collection", "locked", "--json"], as_root_without_bypass=as_root)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == [{"path": str(locked), "error": "locked: the folder cannot be "
                                 "read (Permission denied), so its files were skipped."}]
    assert report["indexed"] == 1
