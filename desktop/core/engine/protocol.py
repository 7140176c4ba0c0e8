"""The JSON-lines protocol between the engine client and the worker process (DESIGN section 2).

Requests (client -> worker), each with an integer "id":
  load {path, n_ctx, n_gpu_layers, n_threads, n_threads_batch, n_batch, embedding, mmproj?,
        draft_path?, flash_attn? ("auto", "on", "off"), tuning_file?}  (loaded info then says
        draft_model: its name or null, draft_note; flash_attn as asked, flash_attn_used as
        loaded, flash_choice {source: "measured" or "saved", timings?} where Automatic was
        measured on this machine)
  generate {parts, params}   count {texts}   embed {texts}   cancel {target}
  unload {}   shutdown {}
Events (worker -> client), each with the "id" of its request:
  loaded {info}  tokens {text, reasoning?}  done {stop_reason, prompt_tokens, cached_tokens,
  completion_tokens, ttft_s, tokens_per_s, reasoning_tokens?, reasoning_s?, ...}
generate params may carry reasoning_format ("think", "harmony", "gemma": core/chat/reasoning.py):
the worker then sends a reasoning model's thinking in `reasoning`, apart from the answer.  counted {counts}  embedded {vectors}
  ok {}  error {kind, message}
  progress {stage, done, total}: before a final event, "load" (percent of the model loaded)
  or "prompt" (prompt tokens read, for prompts longer than one batch); not final.
"""

from __future__ import annotations

import json
from typing import Any

# Flash attention modes a load may ask for (LoadOptions.flash_attn, engine_worker's
# flash_attention): llama.cpp decides per device, always, never.
FLASH_MODES = ("auto", "on", "off")
REQUESTS = {"load", "generate", "count", "embed", "cancel", "unload", "shutdown", "state"}
FINAL_EVENTS = {"loaded", "done", "counted", "embedded", "ok", "error"}


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes | str) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("protocol message is not an object")
    return message
