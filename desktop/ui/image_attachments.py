"""Images for vision models in the window: a tray of thumbnails above the message box (filled
by its button, by pasting an image, or by dropping image files), and thumbnails on the
messages that carry images.

The tray only holds file paths until the message is sent; the chat service copies the
files into the data dir (content-addressed) with the message. A pasted image is written to a
private temporary file first. Nothing here talks to the network.
"""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QEvent, QIODevice, QObject, QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeyEvent, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.store.images import ImageStore, image_kind

THUMB = 64  # thumbnail edge in the tray and on messages, in pixels
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
FILTER = "Images (*.png *.jpg *.jpeg *.gif *.bmp)"
_roots: dict[str, Path] = {}  # "images": <data dir>/images, set by install()


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def thumbnail(path: str | Path, edge: int = THUMB) -> QPixmap:
    pixmap = QPixmap(str(path))
    if pixmap.isNull():
        return pixmap
    return pixmap.scaled(edge, edge, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)


class Thumb(QWidget):
    """One image: its thumbnail, and in the tray a button that takes it out again."""

    removed = Signal(str)

    def __init__(self, path: str, removable: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        row = QVBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(1)
        self.picture = QLabel()
        self.picture.setFixedSize(QSize(THUMB, THUMB))
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pixmap = thumbnail(path)
        if pixmap.isNull():
            self.picture.setText("?")
        else:
            self.picture.setPixmap(pixmap)
        self.picture.setToolTip(Path(path).name)
        self.picture.setAccessibleName(f"Image {Path(path).name}")
        row.addWidget(self.picture)
        if removable:
            self.remove_button = QToolButton()
            self.remove_button.setText("Remove")
            self.remove_button.setAccessibleName(f"Remove image {Path(path).name}")
            self.remove_button.clicked.connect(lambda: self.removed.emit(self.path))
            row.addWidget(self.remove_button)


class ThumbStrip(QWidget):
    """A row of thumbnails (on a message)."""

    def __init__(self, paths: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("image-strip")
        self.setAccessibleName(f"{len(paths)} image{'s' if len(paths) != 1 else ''}")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 2, 0, 2)
        row.setSpacing(6)
        self.thumbs = [Thumb(p, removable=False) for p in paths]
        for thumb in self.thumbs:
            row.addWidget(thumb)
        row.addStretch(1)


class ImageTray(QWidget):
    """The images waiting to be sent with the next message."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Images to send")
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(6)
        self.add_button = QToolButton()
        self.add_button.setText("Image…")
        self.add_button.setToolTip("Attach images for a vision model (or paste, or drop them)")
        self.add_button.setAccessibleName("Attach an image")
        self.add_button.clicked.connect(self.choose)
        self.row.addWidget(self.add_button)
        self.row.addStretch(1)
        self.paths: list[str] = []
        self.thumbs: list[Thumb] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def choose(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Attach images", "", FILTER)
        self.add_paths(paths)

    def add_paths(self, paths: list[str]) -> None:
        for path in paths:
            if path in self.paths:
                continue
            thumb = Thumb(path, removable=True, parent=self)
            thumb.removed.connect(self.remove)
            self.row.insertWidget(len(self.thumbs) + 1, thumb)
            self.thumbs.append(thumb)
            self.paths.append(path)
        self.changed.emit()

    def add_image(self, image: QImage) -> None:
        """A pasted image: saved as PNG to a private temporary file, then attached."""
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")  # type: ignore[call-overload]  # QIODevice overload
        # A private file of this machine's temporary folder; the service copies it into the
        # data dir when the message is sent.
        fd, name = tempfile.mkstemp(prefix="hearth-paste-", suffix=".png")
        with os.fdopen(fd, "wb") as handle:
            handle.write(bytes(buffer.data().data()))
        self.add_paths([name])

    def remove(self, path: str) -> None:
        for thumb in [t for t in self.thumbs if t.path == path]:
            self.thumbs.remove(thumb)
            thumb.setParent(None)
            thumb.deleteLater()
        self.paths = [p for p in self.paths if p != path]
        self.changed.emit()

    def take(self) -> list[str]:
        """The images to send, and an empty tray."""
        paths = list(self.paths)
        for path in paths:
            self.remove(path)
        return paths


class _ComposerImages(QObject):
    """Paste (Ctrl/Cmd+V of an image) and drops of image files on the message box."""

    def __init__(self, tray: ImageTray, composer: QWidget) -> None:
        super().__init__(composer)
        self.tray = tray
        composer.installEventFilter(self)
        viewport = getattr(composer, "viewport", None)
        if viewport is not None:
            viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) \
                and event.matches(QKeySequence.StandardKey.Paste):
            mime = QGuiApplication.clipboard().mimeData()
            if mime is not None and mime.hasImage():
                self.tray.add_image(QImage(mime.imageData()))
                return True
            return False
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            mime = event.mimeData()  # type: ignore[attr-defined]
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] \
                if mime.hasUrls() else []
            if paths and all(is_image_file(p) for p in paths):
                event.acceptProposedAction()  # type: ignore[attr-defined]
                if kind == QEvent.Type.Drop:
                    self.tray.add_paths(paths)
                return True
        return False


def message_images(message: Any) -> list[str]:
    """The files of a stored message's images (those still in the data dir)."""
    root = _roots.get("images")
    if root is None or not getattr(message, "images", None):
        return []
    store = ImageStore(root.parent)
    return [str(p) for p in (store.path(h) for h in message.images) if p is not None]


def show_on_message(widget: QWidget, paths: list[str]) -> None:
    """Thumbnails under a message's header (the message keeps its images)."""
    if not paths or widget.findChild(ThumbStrip) is not None:
        return
    layout = widget.layout()
    strip = ThumbStrip(paths, widget)
    if isinstance(layout, QVBoxLayout):
        layout.insertWidget(1, strip)


def install(window: Any) -> ImageTray:
    """Add the tray above the message box, paste and drop on the box, and image files dropped
    on the window; returns the tray (the window's send() takes its images)."""
    _roots["images"] = Path(window.ctx.data_dir) / "images"
    tray = ImageTray()
    column = window.compose_area.layout()
    column.insertWidget(0, tray)
    _ComposerImages(tray, window.composer)
    documents = window.files_dropped

    def dropped(paths: list[str]) -> None:
        # Images go with the next message; other files are read for the chat as before.
        images = [p for p in paths if is_image_file(p)]
        others = [p for p in paths if not is_image_file(p)]
        if images:
            tray.add_paths(images)
        if others:
            documents(others)

    window.files_dropped = dropped
    return tray


def images_for_send(window: Any) -> list[str] | None:
    """The tray's images for the message being sent; None (with a sentence shown) when the
    loaded model cannot see images, so the message stays in the box."""
    tray: ImageTray = window.image_tray
    if not tray.paths:
        return []
    model = window.service.model
    if model is not None and model.path == window.ctx.settings.get("last_model") \
            and not model.loaded.get("vision"):
        window.show_error(f"{Path(model.path).name} cannot see images: choose a vision model "
                          "(one with its mmproj projector), or remove the images.")
        return None
    for path in tray.paths:
        try:
            with open(path, "rb") as handle:
                head = handle.read(16)
        except OSError as exc:
            window.show_error(f"The image {Path(path).name} could not be read: "
                              f"{exc.strerror or exc}.")
            return None
        if image_kind(head) is None:
            window.show_error(f"{Path(path).name} is not a PNG, JPEG, GIF or BMP image.")
            return None
    return tray.take()


def send_job(service: Any, images: list[str]) -> Any:
    return partial(service.send, images=images) if images else service.send
