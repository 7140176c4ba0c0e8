"""What the conversation area shows before there is a conversation: a first-run panel that
offers the recommended model that fits this computer with one Download button, or, once a
model is there, a short "start a conversation" page.

The choice is made off the GUI thread after the library is read (StartView), so a first run
never flashes "no model yet" while the starter model is still being registered.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat.conversations import StartView
from desktop.ui import theme

READY_TITLE = "Start a conversation"
READY_TEXT = ("Type a message below: Enter sends, Shift+Enter starts a new line. Drop files "
              "here to ask about them. Everything stays on this computer.")
WELCOME_TITLE = "Welcome to Hearth"
NO_MODEL_TEXT = ("There is no model yet. Hearth runs language models on this computer; "
                 "everything you type stays here.")


def _label(text: str = "", name: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    if name:
        label.setAccessibleName(name)
    return label


class StartPanel(QWidget):
    """The empty conversation area. `show_view(StartView)` picks what it says."""

    download_requested = Signal(object)  # a CatalogEntry
    open_file_requested = Signal()
    browse_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: StartView | None = None
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(10)
        self.title = _label(name="Title")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        self.text = _label(name="Introduction")
        self.recommendation = _label(name="Recommended model")
        self.fit = _label(name="How it fits")
        self.progress = _label(name="Download status")
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("primary")
        self.download_button.setAccessibleName("Download the recommended model")
        self.download_button.clicked.connect(self._download)
        self.open_button = QPushButton("Open a GGUF file…")
        self.open_button.setAccessibleName("Open a GGUF file")
        self.open_button.clicked.connect(self.open_file_requested.emit)
        self.browse_button = QPushButton("Other models…")
        self.browse_button.setAccessibleName("Other models")
        self.browse_button.setToolTip("Recommended models, the Hugging Face Hub, and models "
                                      "from LM Studio, GPT4All, Jan or Ollama")
        self.browse_button.clicked.connect(self.browse_requested.emit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.browse_button)
        buttons.addStretch(1)
        for widget in (self.title, self.text, self.recommendation, self.fit, self.progress):
            column.addWidget(widget)
        column.addLayout(buttons)
        self.card = QWidget()
        self.card.setLayout(column)
        self.card.setMaximumWidth(640)
        self.card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.card, 20)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.card.hide()  # nothing at all until the library has been read: no flash

    @property
    def first_run(self) -> bool:
        return self.view is not None and not self.view.has_model

    def show_view(self, view: StartView) -> None:
        self.view = view
        self.card.show()
        offer = not view.has_model
        for widget in (self.recommendation, self.fit, self.download_button, self.open_button,
                       self.browse_button):
            widget.setVisible(offer)
        self.progress.setVisible(False)
        if view.has_model:
            self.title.setText(READY_TITLE)
            self.text.setText(READY_TEXT)
            return
        self.title.setText(WELCOME_TITLE)
        self.text.setText(NO_MODEL_TEXT)
        entry = view.recommended
        if entry is None:
            self.recommendation.setText(
                "None of the recommended models fits this computer's free memory "
                f"({view.machine}). Open a GGUF file you have, or look for a smaller one.")
            self.fit.hide()
            self.download_button.hide()
            return
        self.recommendation.setText(
            f"Recommended for this computer: <b>{entry.name}</b> ({entry.size / 1e9:.1f} GB, "
            f"{entry.license}). {entry.description}")
        self.recommendation.setTextFormat(Qt.TextFormat.RichText)
        self.fit.setText(view.fit.text if view.fit else "")
        self.download_button.setText(f"Download {entry.name}")
        self.download_button.setToolTip(f"{entry.repo}/{entry.file}, checked against its "
                                        "SHA-256 after download")

    def _download(self) -> None:
        if self.view is not None and self.view.recommended is not None:
            self.download_requested.emit(self.view.recommended)

    def show_download(self, job: Any) -> None:
        """Progress of the recommended download, in words."""
        if self.view is None or self.view.recommended is None:
            return
        entry = self.view.recommended
        if job.repo != entry.repo or getattr(job.model, "name", "") != entry.file:
            return
        state = job.state
        status = state.status
        self.progress.show()
        tone = None
        if status == "done":
            text = f"{entry.name} is ready. Type a message below."
            tone = "good"
        elif status == "failed":
            text = state.error or "The download failed."
            tone = "error"
        elif status == "paused":
            text = "Paused. Resume it in Models… → Downloads."
        elif status == "queued":
            text = "Waiting to start…"
        else:
            total = getattr(state, "total", 0) or entry.size
            done = getattr(state, "done", 0) or 0
            text = f"Downloading {entry.name}: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB"
        self.progress.setText(text)
        theme.set_text_tone(self.progress, tone)
        self.download_button.setEnabled(status in ("failed", "paused"))
