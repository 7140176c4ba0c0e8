"""About Hearth: version, the llama.cpp build, licences, where data lives, and no telemetry.

The llama.cpp version is read from the installed package's metadata: importing llama_cpp in
the GUI process would load the native library the worker process exists to isolate.
"""

from __future__ import annotations

import html
import importlib.metadata
import platform
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from desktop import __version__
from desktop.core.context import AppContext


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def about_facts(ctx: AppContext, engine_info: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(label, text) rows of the About dialog, plain data so the CLI could print them too."""
    llama = package_version("llama_cpp_python") or package_version("llama-cpp-python")
    engine = f"llama-cpp-python {llama}" if llama else "llama-cpp-python is not installed"
    if engine_info:
        offload = engine_info.get("gpu_offload_supported")
        if offload is not None:
            engine += " (GPU offload: yes)" if offload else " (CPU-only build)"
    qt = package_version("PySide6-Essentials") or package_version("PySide6")
    return [
        ("Version", f"Hearth {__version__}"),
        ("Engine", engine),
        ("Runs on", f"Python {platform.python_version()}, Qt for Python {qt or '?'}, "
                    f"{platform.system()} {platform.machine()}"),
        ("Licences", "Hearth: MIT. llama.cpp and llama-cpp-python: MIT. Qt for Python: "
                     "LGPLv3. Each model has its own licence (shown in Models)."),
        ("Data folder", str(ctx.data_dir)),
        ("Privacy", "No telemetry. What you type and attach stays on this computer; Hearth "
                    "goes online only to search or download models when you ask."),
    ]


class AboutDialog(QDialog):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None,
                 engine_info: dict[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Hearth")
        self.setAccessibleName("About Hearth")
        layout = QVBoxLayout(self)
        title = QLabel("<h2>Hearth</h2><p>Chat with language models on your own computer.</p>")
        title.setAccessibleName("Hearth")
        layout.addWidget(title)
        self.facts = about_facts(ctx, engine_info)
        rows = "".join(f"<tr><td style='padding-right:12px; vertical-align:top'><b>"
                       f"{html.escape(label)}</b></td><td>{html.escape(text)}</td></tr>"
                       for label, text in self.facts)
        self.body = QLabel(f"<table>{rows}</table>")
        self.body.setAccessibleName("About Hearth details")
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)
        layout.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.resize(560, 360)
