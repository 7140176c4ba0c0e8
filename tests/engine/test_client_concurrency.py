"""EngineClient from many threads at once, against the real worker (issue 10).

The window loads a model on one thread while the chat sends on another; the CLI's document
search embeds while a reply is prepared. Overlapping calls must share one worker process
and each request must get its own answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)


def _workers(ignore: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This test process's running engine-worker children (other than `ignore`: workers
    other tests' fixtures keep)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if ("engine-worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE
                    and child.pid not in ignore):
                found.append(child)
        except psutil.Error:
            continue  # it ended while we looked
    return found


def _pids() -> frozenset[int]:
    return frozenset(w.pid for w in _workers())


def _run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Start `count` threads that call work(i) at the same instant; return results or
    re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_overlapping_loads_and_sends_share_one_worker(gemma_path: Path, tmp_path: Path) -> None:
    before = _pids()
    client = EngineClient(tmp_path / "engine.log")
    parts = render_parts(GEMMA, [{"role": "user", "content": "Say hello."}])

    def load_and_generate(index: int) -> tuple[int, int]:
        client.load(LoadOptions(str(gemma_path), n_ctx=512))
        assert client.process is not None
        pid = client.process.pid
        reply = client.generate(parts, {"max_tokens": 2, "temperature": 0,
                                        "stop": GEMMA.stop}).wait()
        return pid, int(reply["completion_tokens"] or 0)

    try:
        results = _run_together(4, load_and_generate)
        workers = _workers(before)
        assert len(workers) == 1, [w.pid for w in workers]
        assert {pid for pid, _ in results} == {workers[0].pid}
        assert all(tokens > 0 for _, tokens in results)
    finally:
        client.shutdown()


def test_concurrent_requests_each_get_their_own_answer(gemma_path: Path,
                                                       tmp_path: Path) -> None:
    """Request ids are unique under threads: a shared id would hand one thread another's
    answer (or leave it waiting forever)."""
    before = _pids()
    client = EngineClient(tmp_path / "engine.log")
    texts = ["word " * n for n in range(1, 9)]
    try:
        client.load(LoadOptions(str(gemma_path), n_ctx=512))
        expected = client.count_tokens(texts)
        assert len(set(expected)) == len(texts)  # each text has its own token count

        def count_many(index: int) -> list[int]:
            return [client.count_tokens([texts[index]])[0] for _ in range(25)]

        results = _run_together(len(texts), count_many)
        for index, counts in enumerate(results):
            assert counts == [expected[index]] * 25
        assert len(_workers(before)) == 1
    finally:
        client.shutdown()


def test_request_ids_are_unique_across_threads(tmp_path: Path) -> None:
    client = EngineClient(tmp_path / "engine.log")  # ids need no worker
    ids = _run_together(8, lambda _: [client._next_id() for _ in range(5000)])
    flat = [i for chunk in ids for i in chunk]
    assert len(set(flat)) == len(flat) == 40000
