"""Per-conversation system prompt and sampling settings, with app-wide defaults; for a
reasoning model whose template has them, thinking on/off and the effort level."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

# name -> (label, kind, minimum, maximum, step)
FIELDS: dict[str, tuple[str, str, float, float, float]] = {
    "temperature": ("Temperature", "float", 0.0, 2.0, 0.05),
    "top_p": ("Top-p", "float", 0.0, 1.0, 0.01),
    "top_k": ("Top-k (0 = off)", "int", 0, 1000, 1),
    "min_p": ("Min-p", "float", 0.0, 1.0, 0.01),
    "repeat_penalty": ("Repeat penalty (1 = off)", "float", 0.5, 2.0, 0.01),
    "max_tokens": ("Max reply tokens", "int", 1, 131072, 64),
    "seed": ("Seed (-1 = random)", "int", -1, 2**31 - 1, 1),
}
# A model's draft model (per-model key `draft_model`): paired from the library, or none.
DRAFT_MODELS = (("Automatic", "auto"), ("Off", "off"))
# A model's flash attention (per-model key `flash_attn`, LoadOptions.flash_attn).
FLASH_ATTN = (("Automatic", "auto"), ("On", "on"), ("Off", "off"))
# gpt-oss's reasoning_effort; None leaves it to the template (gpt-oss: medium).
EFFORTS = (("Model default", None), ("Low", "low"), ("Medium", "medium"), ("High", "high"))


def _choices(name: str, items: tuple[tuple[str, Any], ...], value: Any,
             tip: str = "") -> QComboBox:
    """A combo box of (label, value) items showing `value` (the first item if it is not one)."""
    box = QComboBox()
    box.setAccessibleName(name)
    box.setToolTip(tip)
    for label, data in items:
        box.addItem(label, data)
    box.setCurrentIndex(max(box.findData(value), 0))
    return box


class ChatSettingsDialog(QDialog):
    def __init__(self, system_prompt: str, sampling: dict[str, Any],
                 parent: QWidget | None = None, model_fields: bool = False,
                 thinking: dict[str, bool] | None = None) -> None:
        """`thinking`: ChatService.thinking_controls() of the chat's model; a switch and an
        effort level appear only where it offers them (values in `sampling`: "thinking",
        "reasoning_effort")."""
        super().__init__(parent)
        self.setWindowTitle("Chat settings")
        form = QFormLayout(self)
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setPlaceholderText("Instructions the model sees first, e.g. "
                                              "“Answer briefly.”")
        self.system_prompt.setMaximumHeight(100)
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setTabChangesFocus(True)
        form.addRow("System prompt", self.system_prompt)
        self.inputs: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for name, (label, kind, low, high, step) in FIELDS.items():
            box: QSpinBox | QDoubleSpinBox
            value = sampling.get(name)
            if name == "seed" and value is None:
                value = -1  # "random", shown as -1
            if kind == "int":
                box = QSpinBox()
                box.setRange(int(low), int(high))
                box.setSingleStep(int(step))
                box.setValue(int(value if value is not None else low))
            else:
                box = QDoubleSpinBox()
                box.setRange(low, high)
                box.setDecimals(2)
                box.setSingleStep(step)
                box.setValue(float(value if value is not None else low))
            box.setAccessibleName(label)
            self.inputs[name] = box
            form.addRow(label, box)
        self.speculative: QCheckBox | None = None  # per-model fields only
        self.draft_model: QComboBox | None = None
        self.flash_attn: QComboBox | None = None
        if model_fields:
            # Per-model load settings: context length and layers offloaded to the GPU.
            ctx_box = QSpinBox()
            ctx_box.setRange(256, 1_048_576)
            ctx_box.setSingleStep(1024)
            ctx_box.setValue(int(sampling.get("n_ctx") or 4096))
            self.inputs["n_ctx"] = ctx_box
            form.addRow("Context length (tokens)", ctx_box)
            # -1 is "auto" (as many layers as free VRAM holds): an untouched dialog must not
            # turn a GPU machine into a CPU-only one.
            gpu_box = QSpinBox()
            gpu_box.setRange(-1, 999)
            gpu_box.setSpecialValueText("Auto (what free VRAM holds)")
            layers = sampling.get("n_gpu_layers")
            gpu_box.setValue(-1 if layers is None else int(layers))
            self.inputs["n_gpu_layers"] = gpu_box
            form.addRow("GPU layers (0 = CPU only)", gpu_box)
            # Speculative decoding for this model: prompt-lookup drafts, and a smaller model
            # of the same vocabulary drafting for it ("auto" pairs one from the library).
            self.speculative = QCheckBox("Speculative decoding")
            self.speculative.setAccessibleName("Speculative decoding")
            self.speculative.setToolTip("Guesses the next few tokens and checks them in one "
                                        "step: faster, and the reply stays exactly the same")
            self.speculative.setChecked(bool(sampling.get("speculative", True)))
            form.addRow("Drafting", self.speculative)
            self.draft_model = _choices(
                "Draft model", DRAFT_MODELS, sampling.get("draft_model", "auto"),
                "Automatic: a small model in your library with the same vocabulary drafts for "
                "this one, where there is one")
            form.addRow("Draft model", self.draft_model)
            self.flash_attn = _choices(
                "Flash attention", FLASH_ATTN, sampling.get("flash_attn", "auto"),
                "Automatic: on wherever it is faster; on a CPU, for models with narrow "
                "attention heads, Hearth times both ways once on this machine and keeps the "
                "quicker for replies deep in a chat")
            form.addRow("Flash attention", self.flash_attn)
        controls = thinking or {}
        self.thinking: QCheckBox | None = None
        self.effort: QComboBox | None = None
        if controls.get("thinking_switch"):
            self.thinking = QCheckBox("Think before answering")
            self.thinking.setAccessibleName("Thinking")
            self.thinking.setToolTip("Off: the model answers at once, without its thinking "
                                     "(faster, shorter, sometimes less careful)")
            self.thinking.setChecked(bool(sampling.get("thinking", True)))
            form.addRow("Thinking", self.thinking)
        if controls.get("effort"):
            self.effort = _choices("Reasoning effort", EFFORTS, sampling.get("reasoning_effort"))
            form.addRow("Reasoning effort", self.effort)
        self.make_default = QCheckBox("Use these settings for new chats too")
        form.addRow(self.make_default)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[str, dict[str, Any]]:
        sampling: dict[str, Any] = {name: box.value() for name, box in self.inputs.items()}
        if sampling["seed"] == -1:
            sampling["seed"] = None
        if self.speculative is not None:
            sampling["speculative"] = self.speculative.isChecked()
        if self.draft_model is not None:
            sampling["draft_model"] = self.draft_model.currentData()
        if self.flash_attn is not None and self.flash_attn.currentData() != "auto":
            sampling["flash_attn"] = self.flash_attn.currentData()  # "auto": no key at all
        if self.thinking is not None:
            sampling["thinking"] = self.thinking.isChecked()
        if self.effort is not None:
            sampling["reasoning_effort"] = self.effort.currentData()
        return self.system_prompt.toPlainText().strip(), sampling
