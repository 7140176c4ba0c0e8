"""Chat templates: the model's own Jinja template, sandboxed, or a built-in one.

The rendered prompt comes back as *parts*: template scaffolding (where control tokens like
<start_of_turn> are parsed) and message contents (tokenized as plain text, so a user who
types "<end_of_turn>" cannot inject a turn). Assistant contents are flagged `generated`, so
the worker can reuse the exact token ids it produced and the KV-cache prefix stays stable.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Template, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension, loopcontrols

from desktop.core.chat import template_sandbox
from desktop.core.chat.template_sandbox import BoundedSandbox, Limits
from desktop.core.errors import TemplateError, TemplateRefused, UnsafeTemplateError

GEMMA = (
    "{% set ns = namespace(sys='', first=true) %}"
    "{% for m in messages if m.role == 'system' %}{% set ns.sys = m.content %}{% endfor %}"
    "{% for m in messages if m.role != 'system' %}"
    "<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
    "{% if ns.first and ns.sys %}{{ ns.sys }}\n\n{% endif %}{% set ns.first = false %}"
    "{{ m.content }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3 = (
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
PLAIN = (
    "{% for m in messages %}"
    "{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}User: {{ m.content }}\n"
    "{% else %}Assistant: {{ m.content }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# name -> (template, stop strings beyond the model's end-of-generation tokens)
BUILTIN: dict[str, tuple[str, list[str]]] = {
    "gemma": (GEMMA, ["<end_of_turn>"]),
    "chatml": (CHATML, ["<|im_end|>"]),
    "llama3": (LLAMA3, ["<|eot_id|>"]),
    "plain": (PLAIN, ["\nUser:"]),
}

_MARK = re.compile("\ue000(\\d+)\ue001")


@dataclass
class ChatFormat:
    """How to turn a conversation into a prompt for one model."""

    source: str
    name: str  # "model" for the GGUF's own template, else the built-in's name
    stop: list[str]
    bos_token: str = ""
    eos_token: str = ""

    @property
    def builtin(self) -> bool:
        return self.name != "model"


def choose_format(architecture: str, special_tokens: dict[str, int], chat_template: str | None,
                  bos_token: str = "", eos_token: str = "") -> ChatFormat:
    """The model's template if it has one, else a built-in matched to its vocabulary."""
    if chat_template:
        return ChatFormat(chat_template, "model", [], bos_token, eos_token)
    if "<start_of_turn>" in special_tokens or architecture.startswith("gemma"):
        name = "gemma"
    elif "<|im_start|>" in special_tokens:
        name = "chatml"
    elif "<|start_header_id|>" in special_tokens:
        name = "llama3"
    else:
        name = "plain"
    source, stop = BUILTIN[name]
    return ChatFormat(source, name, list(stop), bos_token, eos_token)


def _raise_exception(message: str) -> None:
    raise TemplateRefused(f"The model's chat template refused this conversation: {message}")


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks in
    Hugging Face's renderer; here it only renders its body, so such templates still parse."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    # As Hugging Face's renderer defines it: plain JSON, not Jinja's HTML-escaped variant.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _environment() -> BoundedSandbox:
    # The same sandbox, extensions and helpers as the transformers library, which is what the
    # templates published with models are written and tested against, with bounds on time,
    # memory, recursion and output (template_sandbox).
    env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True,
                         extensions=[loopcontrols, _GenerationTag])
    env.add_filter("tojson", _tojson)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


_ENV = _environment()


LIMITS = Limits()


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> Template:
    """Compile once per template source (each reply renders the same one)."""
    try:
        return _ENV.from_string(source)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise _unsafe(exc) from None
    except (JinjaTemplateError, RecursionError, MemoryError, ValueError, TypeError) as exc:
        raise TemplateError(f"The model's chat template could not be rendered: {_short(exc)}",
                            details=repr(exc)) from None


def _unsafe(exc: BaseException) -> UnsafeTemplateError:
    return UnsafeTemplateError(
        "The model's chat template tried to run code that is not allowed, so Hearth did not "
        "use it. The model file may be malicious; choose another file.", details=str(exc))


def _short(exc: BaseException) -> str:
    """The first line of an exception's text, cut: one sentence, never a traceback."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _render(template: Template, limits: Limits, **variables: Any) -> str:
    try:
        return template_sandbox.render(template, limits, **variables)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise _unsafe(exc) from None
    except Exception as exc:  # noqa: BLE001 - any failure of untrusted template code
        raise TemplateError(f"The model's chat template could not be rendered: {_short(exc)}",
                            details=repr(exc)) from None


def render_parts(fmt: ChatFormat, messages: list[dict[str, str]],
                 add_generation_prompt: bool = True,
                 options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render to a list of parts: {"text", "special": bool, "generated": bool}.

    `options` are extra template variables (`enable_thinking`, `reasoning_effort`).

    A model file is untrusted input (CVE-2024-34359): the template runs in Jinja's immutable
    sandbox, and any attempt to reach Python internals becomes a TemplateError.
    """
    marked = [
        {**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)
    ]
    template = _compile(fmt.source)
    variables = {**(options or {}), "add_generation_prompt": add_generation_prompt,
                 "bos_token": fmt.bos_token, "eos_token": fmt.eos_token}
    text = _render(template, LIMITS, messages=marked, **variables)
    if not text.strip():
        # llama.cpp asserts on an empty prompt and the worker would abort.
        raise TemplateError("The model's chat template turned the conversation into an empty "
                            "prompt.")
    parts: list[dict[str, Any]] = []
    pos = 0
    seen: set[int] = set()
    for match in _MARK.finditer(text):
        if match.start() > pos:
            parts.append({"text": text[pos:match.start()], "special": True})
        index = int(match.group(1))
        if index >= len(messages):
            raise TemplateError("The model's chat template produced an unexpected marker.")
        seen.add(index)
        message = messages[index]
        if message["content"]:
            parts.append({"text": message["content"], "special": False,
                          "generated": message["role"] == "assistant"})
        pos = match.end()
    if pos < len(text):
        parts.append({"text": text[pos:], "special": True})
    if not seen and any(m["content"] for m in messages):
        # A template that transformed the contents (e.g. |upper) lost our markers: fall back to
        # rendering the real text as one part; correct, only without cache-friendly splitting.
        held = sum(len(m.get("content") or "") for m in messages)
        limits = Limits(max_size=LIMITS.max_size + 2 * held,
                        max_output=LIMITS.max_output + 2 * held)
        plain = _render(template, limits, messages=messages, **variables)
        return [{"text": plain, "special": True}]
    return parts


def alternate(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge back-to-back turns of the same role (a question asked again after a reply that
    failed before its first word). Many templates (Gemma, Mistral, Llama 2) refuse a chat
    whose roles do not alternate, which would lock the user out of the conversation."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n\n"
                          + turn["content"]}
        else:
            merged.append(dict(turn))
    return merged


def fold_system(system: str, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system prompt as the start of the first user turn, for templates without one."""
    if turns and turns[0]["role"] == "user":
        first = {**turns[0], "content": f"{system}\n\n{turns[0]['content']}"}
        return [first, *turns[1:]]
    return [{"role": "user", "content": system}, *turns]


def check_template(fmt: ChatFormat) -> None:
    """Render a sample conversation before llama.cpp sees the file.

    UnsafeTemplateError: a hostile template. TemplateError: a broken one (bad syntax, or a
    feature this renderer lacks) that could render no chat at all. A template that refuses
    the sample on purpose (raise_exception) passes: that says nothing about the file.
    """
    try:
        render_parts(fmt, [{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Thanks"}])
    except TemplateRefused:
        pass


def usable_format(architecture: str, special_tokens: dict[str, int],
                  chat_template: str | None, bos_token: str = "",
                  eos_token: str = "") -> tuple[ChatFormat, str | None]:
    """The format to chat with, and a note when the model's own template had to be replaced.

    A hostile template raises UnsafeTemplateError. A broken one (bad syntax, a feature this
    renderer lacks) is replaced by the built-in format matching the vocabulary, so the model
    still chats instead of failing every reply."""
    fmt = choose_format(architecture, special_tokens, chat_template, bos_token, eos_token)
    try:
        check_template(fmt)
    except UnsafeTemplateError:
        raise
    except TemplateError as exc:
        fallback = choose_format(architecture, special_tokens, None, bos_token, eos_token)
        return fallback, (f"Its own chat template could not be used ({exc.message}), so "
                          f"Hearth's built-in {fallback.name} format is used instead.")
    return fmt, None


def parts_text(parts: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in parts)
