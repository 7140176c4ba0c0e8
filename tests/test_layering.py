"""The Qt boundary and the llama.cpp boundary are enforced by a check, not by good intentions."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import desktop.core

REPO = Path(__file__).resolve().parent.parent

BLOCKER = """
import sys, importlib.abc
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not allowed here")
sys.meta_path.insert(0, Block())
import importlib
for module in sys.argv[2:]:
    importlib.import_module(module)
print("ok")
"""


def _modules(package) -> list[str]:  # noqa: ANN001
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def _import_with_blocked(blocked: list[str], modules: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked), *modules],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_core_imports_without_qt_or_llama_cpp() -> None:
    modules = _modules(desktop.core)
    assert "desktop.core.chat.service" in modules and "desktop.core.engine.client" in modules
    result = _import_with_blocked(["PySide6", "shiboken6", "llama_cpp"], modules)
    assert result.returncode == 0, result.stderr


def test_ui_and_cli_import_without_llama_cpp() -> None:
    import desktop.ui

    modules = [*_modules(desktop.ui), "desktop.app", "desktop.cli", "desktop.cli.self_test"]
    result = _import_with_blocked(["llama_cpp"], modules)
    assert result.returncode == 0, result.stderr


def test_only_the_worker_package_imports_llama_cpp() -> None:
    offenders = []
    for path in (REPO / "desktop").rglob("*.py"):
        if "engine_worker" in path.parts:
            continue
        for line in path.read_text().splitlines():
            if line.strip().startswith(("import llama_cpp", "from llama_cpp")):
                offenders.append(str(path))
    assert offenders == []


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "desktop", "tests", "main.py"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_package_type_checks() -> None:
    """mypy over core, the UI, the worker, the server and the CLI (pyproject's [tool.mypy])."""
    result = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True,
                            text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    # The whole package, not only core: over a hundred modules are checked.
    checked = int(result.stdout.rsplit(" in ", 1)[1].split()[0])
    assert checked > 100, result.stdout


def test_window_start_up_loads_no_heavy_library(tmp_path) -> None:  # noqa: ANN001
    # The window must open fast and small: llama.cpp lives in the worker, the Hub client and
    # numpy load on first use (DESIGN 1).
    code = (
        "import sys, os\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from desktop.app import create_app, build_window\n"
        "app = create_app()\n"
        f"window = build_window(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "window.show(); app.processEvents()\n"
        "heavy = [m for m in ('llama_cpp', 'huggingface_hub', 'numpy', 'pypdfium2', 'docx')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "window.close(); window.ctx.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120,
                            env={**os.environ, "HEARTH_DATA_DIR": str(tmp_path)})
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    """pyproject's [tool.importlinter] contracts: core without Qt/llama.cpp, the UI without
    the store's SQL layer, llama.cpp only in the worker (import-linter, as napari does)."""
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                             "lint_imports_command; sys.exit(lint_imports_command())"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout
