"""Reading a model's next-token logits in tests, and comparing two of them."""

from __future__ import annotations

from typing import Any

import numpy as np


def last_logits(llm: Any, ctx: Any = None) -> np.ndarray:
    """A copy of the logits row of the last decoded token in `ctx` (default: llm's own)."""
    import llama_cpp

    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))
    row = llama_cpp.llama_get_logits_ith(llm.ctx if ctx is None else ctx, -1)
    return np.ctypeslib.as_array(row, shape=(n_vocab,)).copy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
