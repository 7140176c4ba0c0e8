"""Hub search, file listing and the downloader against a local fake Hub serving real GGUFs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.models import hub
from desktop.core.models.download import DownloadError, DownloadState, download_file
from desktop.core.models.download_queue import DownloadJob, DownloadQueue, run_job
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf

REPO_ROOT = Path(__file__).resolve().parents[2]
GEMMA_REPO = "google/gemma-3-270m-GGUF"
GEMMA_FILE = "gemma-3-270m-Q4_K_M.gguf"
GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE = 253113024
FAST = {"backoff_s": 0.01, "retries": 4}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, gemma_path: Path, tmp_path: Path):  # noqa: ANN201
    server = FakeHub()
    server.add_file(GEMMA_REPO, GEMMA_FILE, gemma_path, sha256=GEMMA_SHA)
    small = write_small_gguf(tmp_path / "small.gguf")
    for part in (1, 2):
        server.add_file("acme/split-GGUF", f"big-Q8_0-0000{part}-of-00002.gguf", small)
    server.add_file("acme/split-GGUF", "big-IQ2_XS.gguf", small)
    server.add_file("acme/secret-GGUF", "secret-Q4_0.gguf", small)
    server.gated["acme/secret-GGUF"] = "hf_test_token"
    server.meta[GEMMA_REPO] = {"downloads": 5000, "license": "gemma"}
    url = server.start()
    monkeypatch.setenv("HF_ENDPOINT", url)
    yield server
    server.stop()


def _job(repo: str, name: str) -> DownloadJob:
    model = next(m for m in hub.repo_files(repo).models if m.name == name)
    return DownloadJob(repo, model)


def test_search_and_list_files(fake_hub: FakeHub) -> None:
    results = hub.search("gemma")
    assert [r["repo"] for r in results] == [GEMMA_REPO]
    assert results[0]["downloads"] == 5000 and results[0]["license"] == "gemma"
    assert results[0]["gated"] is False
    assert ("GET", "/api/models", None) in fake_hub.requests
    listing = hub.repo_files("acme/split-GGUF")
    by_name = {m.name: m for m in listing.models}
    split = by_name["big-Q8_0-00001-of-00002.gguf"]
    assert split.split and split.quant == "Q8_0" and len(split.files) == 2
    assert by_name["big-IQ2_XS.gguf"].quant == "IQ2_XS"
    gemma = hub.repo_files(GEMMA_REPO).models[0]
    assert gemma.sha256[GEMMA_FILE] == GEMMA_SHA and gemma.size == 253113024


def test_full_download_is_verified_and_added(fake_hub: FakeHub, data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        path = run_job(_job(GEMMA_REPO, GEMMA_FILE), ctx.models_dir, ctx.library, None, **FAST)
        assert path == ctx.models_dir / GEMMA_REPO / GEMMA_FILE
        # fetched at the commit the listing was read at, not whatever "main" is by then
        assert (f"/{GEMMA_REPO}/resolve/{'a' * 40}/{GEMMA_FILE}"
                in [p for _, p, _ in fake_hub.requests])
        assert not path.with_name(path.name + ".part").exists()
        entry = ctx.library.find(path)
        assert entry is not None and entry.metadata["quantization"] == "Q4_K_M"
        assert entry.source == "hub"
    finally:
        ctx.close()


def test_resume_after_connection_cut(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.cut_after[GEMMA_FILE] = 40_000_000
    state = DownloadState()
    dest = tmp_path / "m" / GEMMA_FILE
    download_file(hub.file_url(GEMMA_REPO, GEMMA_FILE), dest, size=253113024, sha256=GEMMA_SHA,
                  state=state, **FAST)
    ranges = [r for m, p, r in fake_hub.requests if p.endswith(GEMMA_FILE)]
    assert ranges[0] is None and ranges[1] == "bytes=40000000-"
    assert state.status == "done" and dest.stat().st_size == 253113024


def test_resume_after_the_process_is_killed(fake_hub: FakeHub, data_dir: Path) -> None:
    fake_hub.throttle_bps = 40_000_000
    env = {**os.environ, "HF_ENDPOINT": os.environ["HF_ENDPOINT"]}
    cmd = [sys.executable, str(REPO_ROOT / "main.py"), "--data-dir", str(data_dir), "models",
           "pull", GEMMA_REPO, GEMMA_FILE]
    part = data_dir / "models" / GEMMA_REPO / (GEMMA_FILE + ".part")
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 30e6):
            time.sleep(0.05)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    kept = part.stat().st_size
    assert 0 < kept < 253113024
    fake_hub.throttle_bps = 0
    result = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert any(r and int(r[6:-1]) >= kept - 2_000_000
               for _, p, r in fake_hub.requests if p.endswith(GEMMA_FILE) and r)
    final = data_dir / "models" / GEMMA_REPO / GEMMA_FILE
    assert final.stat().st_size == 253113024 and not part.exists()


def test_corrupted_byte_is_caught_and_discarded(fake_hub: FakeHub, data_dir: Path) -> None:
    fake_hub.corrupt.add(GEMMA_FILE)
    ctx = AppContext(data_dir)
    try:
        with pytest.raises(DownloadError, match="failed verification"):
            run_job(_job(GEMMA_REPO, GEMMA_FILE), ctx.models_dir, ctx.library, None, **FAST)
        folder = ctx.models_dir / GEMMA_REPO
        assert not any(folder.iterdir()) and ctx.library.list() == []
    finally:
        ctx.close()


def test_gated_repo_needs_the_token(fake_hub: FakeHub, tmp_path: Path) -> None:
    job = _job("acme/secret-GGUF", "secret-Q4_0.gguf")
    with pytest.raises(DownloadError, match="gated or private"):
        run_job(job, tmp_path / "models", None, None, **FAST)
    assert run_job(job, tmp_path / "models", None, "hf_test_token", **FAST).is_file()


def test_server_errors_retry_then_succeed_or_explain(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.fail_500 = 2
    path = run_job(_job("acme/split-GGUF", "big-IQ2_XS.gguf"), tmp_path / "a", None, None, **FAST)
    assert path.is_file()
    fake_hub.fail_500 = 100
    with pytest.raises(DownloadError, match="keeps failing"):
        run_job(_job("acme/split-GGUF", "big-IQ2_XS.gguf"), tmp_path / "b", None, None, **FAST)


def test_split_model_downloads_every_part(fake_hub: FakeHub, tmp_path: Path) -> None:
    job = _job("acme/split-GGUF", "big-Q8_0-00001-of-00002.gguf")
    first = run_job(job, tmp_path / "models", None, None, **FAST)
    assert first.name == "big-Q8_0-00001-of-00002.gguf"
    assert (first.parent / "big-Q8_0-00002-of-00002.gguf").is_file()
    assert job.state.done == job.model.size


def test_file_deleted_on_server(fake_hub: FakeHub, tmp_path: Path) -> None:
    state = DownloadState()
    with pytest.raises(DownloadError, match="no longer exists"):
        download_file(hub.file_url(GEMMA_REPO, "gone.gguf"), tmp_path / "gone.gguf", size=10,
                      sha256=None, state=state, **FAST)


def test_hub_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.HubError, match="Cannot reach the Hugging Face Hub"):
        hub.search("llama")
    with pytest.raises(hub.HubError, match="Cannot reach the Hugging Face Hub") as raised:
        hub.repo_files("a/b")
    assert "Connection refused" in raised.value.details  # told at once, not after retries
    with pytest.raises(DownloadError, match="connection keeps dropping"):
        download_file(hub.file_url("a/b", "c.gguf"), tmp_path / "c.gguf", size=10, sha256=None,
                      state=DownloadState(), **FAST)


def test_disk_full(fake_hub: FakeHub, tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot create a tiny filesystem here (needs root): "
                    + made.stderr.decode(errors="replace"))
    try:
        # The free-space check refuses before the first byte...
        with pytest.raises(DownloadError, match="Not enough disk space"):
            download_file(hub.file_url(GEMMA_REPO, GEMMA_FILE), mount / GEMMA_FILE,
                          size=253113024, sha256=GEMMA_SHA, state=DownloadState(), **FAST)
        # ...and a disk that fills up during the download (size unknown up front) is reported.
        with pytest.raises(DownloadError, match="disk is full"):
            download_file(hub.file_url(GEMMA_REPO, GEMMA_FILE), mount / GEMMA_FILE,
                          size=None, sha256=GEMMA_SHA, state=DownloadState(), **FAST)
        assert not (mount / GEMMA_FILE).exists()
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_queue_runs_downloads_in_order(fake_hub: FakeHub, data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        seen: list[tuple[str, str]] = []
        queue = DownloadQueue(ctx.models_dir, ctx.library,
                              on_change=lambda job: seen.append((job.model.name, job.state.status)))
        listing = hub.repo_files("acme/split-GGUF").models
        jobs = [queue.add("acme/split-GGUF", m) for m in listing]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(j.state.status != "done" for j in jobs):
            time.sleep(0.05)
        assert all(j.state.status == "done" for j in jobs)
        assert len(ctx.library.list()) == 2
        # One after another: the second starts only once the first is done.
        events = [e for e in seen if e[1] in ("downloading", "done")]
        names = [j.model.name for j in jobs]
        assert events.index((names[1], "downloading")) > events.index((names[0], "done"))
    finally:
        ctx.close()


def test_cli_files_and_search_json(fake_hub: FakeHub, data_dir: Path) -> None:
    import json

    env = {**os.environ}
    base = [sys.executable, str(REPO_ROOT / "main.py"), "--data-dir", str(data_dir), "models"]
    files = json.loads(subprocess.run([*base, "files", GEMMA_REPO, "--json"], env=env,
                                      capture_output=True, text=True, check=True).stdout)
    row = files["files"][0]
    assert row["quantization"] == "Q4_K_M" and row["sha256"][GEMMA_FILE] == GEMMA_SHA
    assert row["fit"]["label"] in ("cpu", "gpu_full", "gpu_partial")
    assert row["fit"]["need_bytes"] > row["size"]
    assert files["recommended"] == GEMMA_FILE
    found = json.loads(subprocess.run([*base, "search", "split", "--json"], env=env,
                                      capture_output=True, text=True, check=True).stdout)
    assert [r["repo"] for r in found] == ["acme/split-GGUF"]
    bad = subprocess.run([*base, "pull", GEMMA_REPO, "nope.gguf"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "has no GGUF file nope.gguf" in bad.stderr



def test_pause_resume_and_cancel(fake_hub: FakeHub, data_dir: Path) -> None:
    fake_hub.throttle_bps = 50_000_000
    ctx = AppContext(data_dir)
    try:
        queue = DownloadQueue(ctx.models_dir, ctx.library)
        job = queue.add(GEMMA_REPO, hub.repo_files(GEMMA_REPO).models[0])
        part = ctx.models_dir / GEMMA_REPO / (GEMMA_FILE + ".part")

        def wait(predicate, seconds: float = 60) -> None:  # noqa: ANN001
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not predicate():
                time.sleep(0.02)
            assert predicate()

        wait(lambda: job.state.done > 20_000_000)
        job.state.pause()
        wait(lambda: job.state.status == "paused")
        kept = part.stat().st_size
        assert kept > 20_000_000  # a paused download keeps its bytes
        fake_hub.throttle_bps = 0
        queue.resume(job)
        wait(lambda: job.state.status == "done")
        assert any(r == f"bytes={kept}-" for _, _, r in fake_hub.requests)

        fake_hub.throttle_bps = 50_000_000
        fake_hub.add_file("google/copy-GGUF", GEMMA_FILE, fake_hub.repos[GEMMA_REPO][GEMMA_FILE].path,
                          sha256=GEMMA_SHA)
        job2 = queue.add("google/copy-GGUF", hub.repo_files("google/copy-GGUF").models[0])
        wait(lambda: job2.state.done > 5_000_000)
        job2.state.cancel()
        wait(lambda: job2.state.status == "cancelled")
        copy_dir = ctx.models_dir / "google/copy-GGUF"
        assert not any(copy_dir.iterdir())  # a cancelled download leaves nothing behind
    finally:
        ctx.close()


def _pause_after(queue: DownloadQueue, job: DownloadJob, nbytes: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.state.done < nbytes:
        time.sleep(0.02)
    queue.pause(job)
    while time.monotonic() < deadline and job.state.status != "paused":
        time.sleep(0.02)
    assert job.state.status == "paused"


@contextmanager
def _paused_download(fake_hub: FakeHub, data_dir: Path, after_bytes: int
                     ) -> Iterator[tuple[AppContext, DownloadQueue, DownloadJob]]:
    """A queue that keeps its list in downloads.json, with the Gemma download paused."""
    fake_hub.throttle_bps = 50_000_000
    ctx = AppContext(data_dir)
    try:
        queue = DownloadQueue(ctx.models_dir, ctx.library, store=data_dir / "downloads.json")
        job = queue.add(GEMMA_REPO, hub.repo_files(GEMMA_REPO).models[0])
        _pause_after(queue, job, after_bytes)
        yield ctx, queue, job
    finally:
        ctx.close()


def test_unfinished_downloads_come_back_paused_after_a_restart(fake_hub: FakeHub,
                                                                data_dir: Path) -> None:
    import json

    store = data_dir / "downloads.json"
    with _paused_download(fake_hub, data_dir, 20_000_000) as (ctx, _, _):
        deadline = time.monotonic() + 60
        saved = json.loads(store.read_text())
        assert [s["model"]["name"] for s in saved] == [GEMMA_FILE]
        kept = (ctx.models_dir / GEMMA_REPO / (GEMMA_FILE + ".part")).stat().st_size

        fake_hub.throttle_bps = 0
        calls = len(fake_hub.requests)
        again = DownloadQueue(ctx.models_dir, ctx.library, store=store)  # the app restarted
        [restored] = again.jobs
        assert restored.state.status == "paused" and restored.state.done == kept
        # Nothing is fetched until the user resumes: the queue's thread only ever takes a
        # queued job, and a restored one is paused.
        assert not again.active() and len(fake_hub.requests) == calls
        again.resume(restored)
        while time.monotonic() < deadline + 60 and restored.state.status != "done":
            time.sleep(0.05)
        assert restored.state.status == "done"
        assert (GEMMA_FILE in str(restored.path)) and json.loads(store.read_text()) == []
        assert any(r == f"bytes={kept}-" for _, _, r in fake_hub.requests)


def test_cancelling_a_paused_download_deletes_its_part(fake_hub: FakeHub, data_dir: Path) -> None:
    import json

    with _paused_download(fake_hub, data_dir, 5_000_000) as (ctx, queue, job):
        part = ctx.models_dir / GEMMA_REPO / (GEMMA_FILE + ".part")
        assert part.exists()
        queue.cancel(job)
        assert job.state.status == "cancelled" and not part.exists()
        assert json.loads((data_dir / "downloads.json").read_text()) == []


def test_redirect_to_the_cdn_drops_the_token_and_keeps_the_range(fake_hub: FakeHub,
                                                                  tmp_path: Path) -> None:
    # The real Hub answers /resolve/ with a redirect to a signed CDN URL on another host. The
    # token must not follow it (it would leak, and a signed URL plus a token is refused).
    fake_hub.redirect_host = "localhost"  # the Hub itself is 127.0.0.1: another host name
    job = _job("acme/secret-GGUF", "secret-Q4_0.gguf")
    assert run_job(job, tmp_path / "models", None, "hf_test_token", **FAST).is_file()
    seen = [(p.startswith("/cdn/"), a) for p, a in fake_hub.auth_log if p.endswith(".gguf")]
    assert seen == [(False, "Bearer hf_test_token"), (True, None)]

    fake_hub.cut_after[GEMMA_FILE] = 30_000_000
    dest = tmp_path / "g" / GEMMA_FILE
    download_file(hub.file_url(GEMMA_REPO, GEMMA_FILE), dest, size=GEMMA_SIZE,
                  sha256=GEMMA_SHA, state=DownloadState(), token="hf_test_token", **FAST)
    cdn = [r for _, p, r in fake_hub.requests if p.startswith("/cdn/") and p.endswith(GEMMA_FILE)]
    assert cdn == [None, "bytes=30000000-"]  # the resume's Range reached the CDN
