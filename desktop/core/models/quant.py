"""Quantization labels from GGUF file names, split-file grouping, and what each level means."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Longest alternatives first so Q4_K_M wins over Q4_K and IQ2_XXS over IQ2_XS.
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|S|M|NL)|IQ4_NL|TQ[12]_0|MXFP4|"
    r"Q[2-8]_K_(?:XL|L|M|S)|Q[2-8]_K|Q[4-8]_[01]|Q8_0|"
    r"BF16|F16|F32|FP16|FP32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)

# Approximate bits per weight (llama.cpp's quantize table), for estimates before download.
BITS_PER_WEIGHT = {
    "IQ1_S": 1.56, "IQ1_M": 1.75, "IQ2_XXS": 2.06, "IQ2_XS": 2.31, "IQ2_S": 2.5, "IQ2_M": 2.7,
    "Q2_K": 2.96, "IQ3_XXS": 3.06, "IQ3_XS": 3.3, "IQ3_S": 3.44, "Q3_K_S": 3.5, "IQ3_M": 3.66,
    "Q3_K_M": 3.91, "Q3_K_L": 4.27, "IQ4_XS": 4.25, "IQ4_NL": 4.5, "Q4_0": 4.55, "Q4_K_S": 4.58,
    "Q4_1": 5.0, "Q4_K_M": 4.89, "Q5_0": 5.54, "Q5_K_S": 5.54, "Q5_1": 6.0, "Q5_K_M": 5.7,
    "Q6_K": 6.56, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
    # "_L"/"_XL" variants keep embedding/output tensors at Q8_0: a little larger than the base.
    "Q2_K_L": 3.2, "Q3_K_XL": 4.4, "Q4_K_L": 5.1, "Q5_K_L": 5.9, "Q6_K_L": 6.8,
}

# Plain-language quality note per family, for people who have never heard of quantization.
NOTES = [
    ("IQ1", "Extreme compression: noticeably worse answers. Only if nothing bigger fits."),
    ("IQ2", "Very small: clear quality loss; last resort for big models on small machines."),
    ("Q2", "Very small: clear quality loss; last resort for big models on small machines."),
    ("IQ3", "Small: some quality loss, usable when memory is tight."),
    ("Q3", "Small: some quality loss, usable when memory is tight."),
    ("IQ4", "Good balance: close to Q4_K_M quality, a little smaller."),
    ("Q4", "Recommended balance of size and quality for most people."),
    ("Q5", "High quality, slightly larger than Q4."),
    ("Q6", "Very high quality, nearly indistinguishable from the original."),
    ("Q8", "Near-lossless, about twice the size of Q4."),
    ("BF16", "Original precision: largest and slowest; rarely worth it for chat."),
    ("F16", "Original precision: largest and slowest; rarely worth it for chat."),
    ("F32", "Full 32-bit weights: for conversion work, not for chatting."),
    ("FP", "Original precision: largest and slowest; rarely worth it for chat."),
    ("TQ", "Ternary weights: only for models trained for it."),
    ("MXFP4", "4-bit floating point: the format some models (gpt-oss) ship in."),
]


def quant_label(filename: str) -> str | None:
    """`Llama-3.2-3B-Instruct-Q4_K_M.gguf` -> `Q4_K_M` (None when the name has no label)."""
    matches = _QUANT.findall(filename)
    if not matches:
        return None
    label = matches[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(label, label)


def quality_note(label: str | None) -> str:
    if not label:
        return "Unknown quantization."
    for prefix, note in NOTES:
        if label.startswith(prefix):
            return note
    return "Unknown quantization."


def quality_rank(label: str | None) -> float:
    """Higher is better quality: bits per weight, the usual proxy."""
    return BITS_PER_WEIGHT.get(label or "", 0.0)


@dataclass
class ModelFile:
    """One downloadable model: a single GGUF or all parts of a split one."""

    name: str  # the first part's file name (what llama.cpp opens)
    files: list[str]
    size: int
    sha256: dict[str, str | None] = field(default_factory=dict)
    quant: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    # The commit the sizes and hashes were read at; downloads fetch exactly that commit, so a
    # repository re-uploaded between listing and download cannot fail the hash check.
    revision: str = "main"
    # A vision model's projector (also the last of `files`: downloaded and verified with it).
    mmproj: str | None = None

    @property
    def split(self) -> bool:
        return len(self.files) - (1 if self.mmproj else 0) > 1


def group_files(entries: list[tuple[str, int, str | None]]) -> list[ModelFile]:
    """Group (path, size, sha256) GGUF entries; split parts -00001-of-0000N become one model."""
    singles: list[ModelFile] = []
    splits: dict[str, list[tuple[int, int, str, int, str | None]]] = {}
    for path, size, sha in entries:
        if not path.lower().endswith(".gguf"):
            continue
        match = _SPLIT.match(path)
        if match:
            splits.setdefault(match["stem"], []).append(
                (int(match["part"]), int(match["total"]), path, size, sha))
        else:
            singles.append(ModelFile(path, [path], size, {path: sha}, quant_label(path),
                                     {path: size}))
    for stem, parts in splits.items():
        parts.sort()
        total = parts[0][1]
        if [p[0] for p in parts] != list(range(1, total + 1)):
            continue  # incomplete split set on the server: not offered
        singles.append(ModelFile(parts[0][2], [p[2] for p in parts], sum(p[3] for p in parts),
                                 {p[2]: p[4] for p in parts}, quant_label(stem),
                                 {p[2]: p[3] for p in parts}))
    return sorted(singles, key=lambda m: (m.size, m.name))
