"""Reasoning models: split a reply's text stream into `reasoning` (thinking) and `text` (answer).

Formats, recognised from the model's chat template (and its vocabulary):

- "think": `<think>…</think>` (Qwen3, DeepSeek-R1 and its distills, QwQ, many fine-tunes).
  Templates such as DeepSeek-R1's open `<think>` in the generation prompt, so the reply starts
  inside the thinking; that is read from the rendered prompt's tail.
- "harmony": gpt-oss's channels, `<|channel|>analysis<|message|>…<|end|>` then
  `<|start|>assistant<|channel|>final<|message|>…`; `analysis` is thinking, the rest is answer.
- "gemma": Gemma 4's `<|channel>thought…<channel|>` (its template puts `<|think|>` into the system
  turn when `enable_thinking` is on, and an empty thought into the generation prompt when off).

The parser is fed the reply as it streams, in chunks of any size. A marker split across chunks
is held back until it is complete or proven not to be one, so no field ever shows part of a
marker. Each call costs O(chunk + longest marker): nothing re-scans the reply so far.
"""

from __future__ import annotations

import functools

THINK = "think"
HARMONY = "harmony"
GEMMA = "gemma"
FORMATS = (THINK, HARMONY, GEMMA)

# Tag formats: (open, close).
TAGS: dict[str, tuple[str, str]] = {
    THINK: ("<think>", "</think>"),
    GEMMA: ("<|channel>thought", "<channel|>"),
}

H_START, H_CHANNEL, H_MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
H_END, H_RETURN, H_CALL, H_CONSTRAIN = "<|end|>", "<|return|>", "<|call|>", "<|constrain|>"
HARMONY_MARKERS = (H_START, H_CHANNEL, H_MESSAGE, H_END, H_RETURN, H_CALL, H_CONSTRAIN)
HEADER_LIMIT = 256  # a harmony header longer than this is not a header: show it as text
ROLE_LIMIT = 32  # text before any <|channel|> longer than a role name is the answer itself
EFFORTS = ("low", "medium", "high")


@functools.lru_cache(maxsize=16)
def detect_format(template: str, special_tokens: frozenset[str] = frozenset()) -> str | None:
    """The reasoning format a model writes, from its chat template text and special tokens."""
    if (H_CHANNEL in template and H_MESSAGE in template) or H_CHANNEL in special_tokens:
        return HARMONY
    if ("<|channel>" in template and "<channel|>" in template) or "<channel|>" in special_tokens:
        return GEMMA
    if "<think>" in template or "</think>" in template or "</think>" in special_tokens:
        return THINK
    return None


def template_options(template: str) -> dict[str, bool]:
    """Which reasoning controls a template reads: thinking on/off, effort, past thinking."""
    return {
        "thinking_switch": "enable_thinking" in template,
        "effort": "reasoning_effort" in template,
        "past_reasoning": "reasoning_content" in template,
    }


def _held(buf: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `buf` that is a proper prefix of one of the markers."""
    start = buf.rfind("<", max(0, len(buf) - max(len(m) for m in markers)))
    while start != -1:
        tail = buf[start:]
        if any(m.startswith(tail) and len(tail) < len(m) for m in markers):
            return len(tail)
        start = buf.find("<", start + 1)
    return 0


class ReasoningParser:
    """Feed text pieces; get back (reasoning, text) pieces. `finish()` flushes the end.

    `prompt_tail` is the end of the rendered prompt (where a template may have opened the
    thinking already). `continuing` means the prompt ends inside the answer (a reply being
    continued), so the model's text is answer from the first character.
    """

    def __init__(self, fmt: str | None, prompt_tail: str = "", continuing: bool = False) -> None:
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"unknown reasoning format {fmt!r}")
        self.fmt = fmt
        self.saw_markers = False  # any marker was consumed: the answer is not the raw text
        self._buf = ""  # held back: could still become a marker
        self._ws = ""  # trailing whitespace of the reasoning, held until more thinking follows
        self._reasoning_started = False
        self._lstrip = False  # drop whitespace before the next visible character
        self._channel = "final"
        self._header = ""
        self._header_role = False  # the header began with <|start|>: a role name comes first
        if fmt is None or continuing:
            self.state = "text"
            if fmt == HARMONY and continuing:
                self.state = "content"
            return
        if fmt == HARMONY:
            self._init_harmony(prompt_tail)
            return
        opening, closing = TAGS[fmt]
        at_open, at_close = prompt_tail.rfind(opening), prompt_tail.rfind(closing)
        if at_open != -1 and at_open > at_close:
            self.state = "reasoning"
            self._reasoning_started = False
        else:
            # Only a reply's start may open the thinking: "<think>" later in an answer (a
            # question about tags) is just text.
            self.state = "start"
        self._lstrip = True

    def _init_harmony(self, tail: str) -> None:
        at = tail.rfind(H_START)
        header = tail[at + len(H_START):] if at != -1 else ""
        if H_MESSAGE in header and not any(m in header.split(H_MESSAGE)[-1]
                                           for m in (H_END, H_RETURN, H_CALL)):
            self._channel = self._channel_of(header.split(H_MESSAGE)[0])
            self.state = "content"
        else:
            # The prompt named the role (`<|start|>assistant`): what the model writes next is
            # the rest of the header, or, from a model that skips channels, the answer.
            self.state = "header"
            self._header = header if H_CHANNEL in header else ""
        self._lstrip = True

    @property
    def in_reasoning(self) -> bool:
        if self.state == "reasoning":
            return True
        return self.fmt == HARMONY and self.state == "content" and self._channel == "analysis"

    # --- feeding -----------------------------------------------------------------------
    def feed(self, chunk: str) -> tuple[str, str]:
        if not chunk:
            return "", ""
        if self.state == "text" and not self._lstrip:
            return "", chunk  # past every marker: pass through untouched
        out: tuple[list[str], list[str]] = ([], [])
        if self.fmt == HARMONY:
            self._feed_harmony(self._buf + chunk, out)
        else:
            self._feed_tags(self._buf + chunk, out)
        return "".join(out[0]), "".join(out[1])

    def finish(self) -> tuple[str, str]:
        """End of the stream: what was held back goes where it belongs. An unterminated
        thinking block stays thinking; a marker cut off by the length limit is dropped."""
        out: tuple[list[str], list[str]] = ([], [])
        buf, self._buf = self._buf, ""
        cut_marker = len(buf) >= 2
        if self.fmt == HARMONY:
            if self.state == "header":
                header = self._header + ("" if cut_marker else buf)
                if H_CHANNEL not in header and not self._header_role:
                    self._text(header, out)
            elif not cut_marker:
                self._emit(buf, out)
        elif buf and not cut_marker:
            if self.state == "reasoning":
                self._reason(buf, out)
            else:
                self._text(buf, out)
        self._ws = ""
        return "".join(out[0]), "".join(out[1])

    # --- output helpers ------------------------------------------------------------------
    def _reason(self, piece: str, out: tuple[list[str], list[str]]) -> None:
        if not self._reasoning_started:
            piece = piece.lstrip()
            if not piece:
                return
            self._reasoning_started = True
        body = piece.rstrip()
        if not body:
            self._ws += piece
            return
        out[0].append(self._ws + body)
        self._ws = piece[len(body):]

    def _text(self, piece: str, out: tuple[list[str], list[str]]) -> None:
        if self._lstrip:
            piece = piece.lstrip()
            if not piece:
                return
            self._lstrip = False
        out[1].append(piece)

    def _end_reasoning(self) -> None:
        self._ws = ""  # whitespace before the closing marker belongs to no one
        self._lstrip = True

    # --- <think> style -------------------------------------------------------------------
    def _feed_tags(self, buf: str, out: tuple[list[str], list[str]]) -> None:
        assert self.fmt is not None
        opening, closing = TAGS[self.fmt]
        while buf:
            if self.state == "start":
                stripped = buf.lstrip()
                if not stripped:
                    buf = ""
                    break
                if stripped.startswith(opening):
                    self.saw_markers = True
                    self.state = "reasoning"
                    buf = stripped[len(opening):]
                    continue
                if opening.startswith(stripped):
                    buf = stripped  # could still be the opening marker
                    break
                self.state = "text"
                continue
            if self.state == "reasoning":
                at = buf.find(closing)
                if at == -1:
                    keep = _held(buf, (closing,))
                    self._reason(buf[:len(buf) - keep], out)
                    buf = buf[len(buf) - keep:]
                    break
                self.saw_markers = True
                self._reason(buf[:at], out)
                self._end_reasoning()
                self.state = "text"
                buf = buf[at + len(closing):]
                continue
            self._text(buf, out)
            buf = ""
        self._buf = buf

    # --- harmony ---------------------------------------------------------------------------
    @staticmethod
    def _channel_of(header: str) -> str:
        if H_CHANNEL not in header:
            return "final"
        rest = header.split(H_CHANNEL)[-1].replace("<|", " ").split()
        return rest[0] if rest else "final"

    def _emit(self, piece: str, out: tuple[list[str], list[str]]) -> None:
        """Payload of the current harmony state."""
        if not piece:
            return
        if self.state == "header":
            if not self._header_role and H_CHANNEL not in self._header and piece.strip():
                # Text where the channel should be: a model that skips channels. Answer.
                self.state, self._channel = "content", "final"
                self._text(piece, out)
                return
            self._header += piece
            limit = HEADER_LIMIT if H_CHANNEL in self._header else ROLE_LIMIT
            if len(self._header) > limit:
                # Not a header: a model writing plain text without channels.
                text, self._header = self._header, ""
                self.state, self._channel = "content", "final"
                self._text(text, out)
        elif self.state == "content":
            if self._channel == "analysis":
                self._reason(piece, out)
            else:
                self._text(piece, out)
        elif piece.strip():  # words between messages: never lose them
            self._text(piece, out)

    def _marker(self, marker: str, out: tuple[list[str], list[str]]) -> None:
        self.saw_markers = True
        if marker == H_START:
            self._leave_content()
            self.state, self._header, self._header_role = "header", "", True
        elif marker in (H_CHANNEL, H_CONSTRAIN):
            if self.state != "header":
                self._leave_content()
                self.state, self._header, self._header_role = "header", "", False
            self._header += marker
        elif marker == H_MESSAGE:
            if self.state == "header":
                self._channel = self._channel_of(self._header)
                self.state, self._header = "content", ""
                if self._channel == "analysis" and self._reasoning_started:
                    self._ws = "\n\n"  # a second block of thinking: keep blocks apart
                if self._channel != "analysis":
                    self._lstrip = True
        else:  # <|end|>, <|return|>, <|call|>
            self._leave_content()
            self.state = "between"

    def _leave_content(self) -> None:
        if self.state == "content" and self._channel == "analysis":
            self._end_reasoning()

    def _feed_harmony(self, buf: str, out: tuple[list[str], list[str]]) -> None:
        pos = 0
        while True:
            at = buf.find("<|", pos)
            if at == -1:
                keep = 1 if buf.endswith("<") else 0
                self._emit(buf[:len(buf) - keep], out)
                self._buf = buf[len(buf) - keep:]
                return
            for marker in HARMONY_MARKERS:
                if buf.startswith(marker, at):
                    self._emit(buf[:at], out)
                    self._marker(marker, out)
                    buf, pos = buf[at + len(marker):], 0
                    break
            else:
                tail = buf[at:]
                if any(m.startswith(tail) for m in HARMONY_MARKERS):
                    self._emit(buf[:at], out)  # a marker still arriving
                    self._buf = tail
                    return
                pos = at + 2  # a literal "<|" in the text
