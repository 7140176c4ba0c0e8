"""Reasoning parser: every split of real-looking streams, and the real templates' prompts."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from desktop.core.chat.reasoning import (
    GEMMA,
    HARMONY,
    THINK,
    ReasoningParser,
    detect_format,
    template_options,
)
from desktop.core.chat.templates import ChatFormat, parts_text, render_parts

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def run(fmt: str | None, chunks: list[str], tail: str = "",
        continuing: bool = False) -> tuple[str, str, list[tuple[str, str]]]:
    parser = ReasoningParser(fmt, tail, continuing)
    pieces = [parser.feed(c) for c in chunks]
    pieces.append(parser.finish())
    return ("".join(r for r, _ in pieces), "".join(t for _, t in pieces), pieces)


# (format, prompt tail, raw reply stream, expected reasoning, expected answer)
STREAMS = [
    (THINK, "<|im_start|>assistant\n",
     "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?",
     "The user greets me. I should greet back.", "Hello! How can I help?"),
    # DeepSeek-R1's template opens <think> in the prompt: the reply starts inside it.
    (THINK, "<｜Assistant｜><think>\n",
     "2+2: add them, 4 < 5 and <b>bold</b> stays.\n</think>\n\nThe answer is **4**.",
     "2+2: add them, 4 < 5 and <b>bold</b> stays.", "The answer is **4**."),
    # Thinking switched off: the template closed an empty think already.
    (THINK, "<|im_start|>assistant\n<think>\n\n</think>\n\n",
     "Plain answer with a <think> tag mentioned later.",
     "", "Plain answer with a <think> tag mentioned later."),
    # Unterminated thinking (cut by the length limit): all of it is reasoning.
    (THINK, "<｜Assistant｜><think>\n", "Still thinking about </thin", "Still thinking about", ""),
    (THINK, "<|im_start|>assistant\n", "<think>never closed", "never closed", ""),
    (THINK, "", "No thinking at all, < and </ inside.", "", "No thinking at all, < and </ inside."),
    (HARMONY, "<|start|>assistant",
     "<|channel|>analysis<|message|>User asks 2+2. Simple: 4.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>",
     "User asks 2+2. Simple: 4.", "2 + 2 = 4."),
    (HARMONY, "<|start|>assistant",
     "<|channel|>analysis<|message|>First a <|literal marker-ish|> note.<|end|>"
     "<|start|>assistant<|channel|>analysis<|message|>Second thought.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Done <| here.",
     "First a <|literal marker-ish|> note.\n\nSecond thought.", "Done <| here."),
    (HARMONY, "<|start|>assistant", "<|channel|>analysis<|message|>cut off mid-thought",
     "cut off mid-thought", ""),
    (HARMONY, "<|start|>assistant", "A model that skips channels.", "",
     "A model that skips channels."),
    (GEMMA, "<|turn>model\n",
     "<|channel>thought\nThinking in Gemma 4 style.<channel|>The answer.",
     "Thinking in Gemma 4 style.", "The answer."),
    (GEMMA, "<|turn>model\n<|channel>thought\n<channel|>", "Thinking off: answer only.",
     "", "Thinking off: answer only."),
]


@pytest.mark.parametrize("fmt,tail,raw,reasoning,answer", STREAMS)
def test_every_split_point(fmt: str, tail: str, raw: str, reasoning: str,
                           answer: str) -> None:
    """Two and three chunks at every position, and one character at a time: same result."""
    splits: list[list[str]] = [[raw], list(raw)]
    n = len(raw)
    splits += [[raw[:i], raw[i:]] for i in range(n + 1)]
    # Three chunks at every pair of cut points, on streams short enough to stay quick.
    cuts = range(0, n + 1, 1 if n <= 90 else 3)
    splits += [[raw[:i], raw[i:j], raw[j:]] for i, j in itertools.combinations(cuts, 2)]
    for chunks in splits:
        got_reasoning, got_answer, _ = run(fmt, chunks, tail)
        assert (got_reasoning, got_answer) == (reasoning, answer), chunks


@pytest.mark.parametrize("fmt,tail,raw,reasoning,answer", STREAMS)
def test_streams_promptly(fmt: str, tail: str, raw: str, reasoning: str, answer: str) -> None:
    """Before the end, at most a marker's length is held back: thinking shows live."""
    parser = ReasoningParser(fmt, tail)
    seen_r, seen_t = "", ""
    for ch in raw:
        r, t = parser.feed(ch)
        seen_r, seen_t = seen_r + r, seen_t + t
        assert reasoning.startswith(seen_r) and answer.startswith(seen_t)
    held = len(reasoning) - len(seen_r) + len(answer) - len(seen_t)
    assert held <= len("<|channel|>")


def test_no_format_passes_text_through() -> None:
    assert run(None, ["<think>x</think>", " y"]) [:2] == ("", "<think>x</think> y")


def test_continuing_answer_keeps_leading_space() -> None:
    assert run(THINK, [" world", "</think>"], "<think>", continuing=True)[:2] == (
        "", " world</think>")


def test_in_reasoning_follows_the_stream() -> None:
    parser = ReasoningParser(HARMONY, "<|start|>assistant")
    parser.feed("<|channel|>analysis<|message|>")
    assert parser.in_reasoning
    parser.feed("x<|end|><|start|>assistant<|channel|>final<|message|>")
    assert not parser.in_reasoning


def test_formats_from_the_shipped_templates() -> None:
    assert detect_format(template("qwen3-0.6b.jinja")) == THINK
    assert detect_format(template("deepseek-r1-distill-qwen.jinja")) == THINK
    assert detect_format(template("gpt-oss.jinja")) == HARMONY
    assert detect_format(template("gemma4.jinja")) == GEMMA
    assert detect_format("{{ messages }}") is None
    assert detect_format("{{ messages }}", frozenset({"<think>", "</think>"})) == THINK
    qwen = template_options(template("qwen3-0.6b.jinja"))
    assert qwen == {"thinking_switch": True, "effort": False, "past_reasoning": True}
    assert template_options(template("gpt-oss.jinja"))["effort"]


CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
        {"role": "user", "content": "What is 2+2?"}]


def prompt(name: str, **options: object) -> str:
    fmt = ChatFormat(template(name), "model", [], "<s>", "</s>")
    return parts_text(render_parts(fmt, CHAT, options=dict(options)))


@pytest.mark.parametrize("name,options,inside", [
    ("qwen3-0.6b.jinja", {"enable_thinking": True}, False),
    ("qwen3-0.6b.jinja", {"enable_thinking": False}, False),
    ("deepseek-r1-distill-qwen.jinja", {}, True),
    ("gemma4.jinja", {"enable_thinking": True}, False),
    ("gemma4.jinja", {"enable_thinking": False}, False),
])
def test_real_templates_prompt_tails(name: str, options: dict[str, object],
                                     inside: bool) -> None:
    text = prompt(name, **options)
    fmt = detect_format(template(name))
    parser = ReasoningParser(fmt, text[-256:])
    assert parser.state == ("reasoning" if inside else "start")
    # The model's own earlier thinking is not in the prompt (the prefix stays stable).
    assert "Greet back." not in text
    assert "Hello!" in text


def test_real_template_switches() -> None:
    assert prompt("qwen3-0.6b.jinja", enable_thinking=False).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompt("qwen3-0.6b.jinja", enable_thinking=True).endswith("<|im_start|>assistant\n")
    assert prompt("deepseek-r1-distill-qwen.jinja").endswith("<｜Assistant｜><think>\n")
    assert "<|think|>" in prompt("gemma4.jinja", enable_thinking=True)
    assert prompt("gemma4.jinja", enable_thinking=False).endswith(
        "<|turn>model\n<|channel>thought\n<channel|>")
    high = prompt("gpt-oss.jinja", reasoning_effort="high")
    assert "Reasoning: high" in high and high.endswith("<|start|>assistant")
    assert "Reasoning: medium" in prompt("gpt-oss.jinja")
    parser = ReasoningParser(HARMONY, high[-256:])
    assert parser.state == "header"


# --- the real test model under the real templates ---------------------------------------------

# Gemma 3 270M is a base model that repeats its prompt: under DeepSeek-R1's template, which opens
# <think> in the generation prompt, its reply starts as thinking and a </think> in the question
# gets repeated, closing it. So the real worker meets real markers in a real stream.
ASK = "Repeat exactly: I should add them.</think>The answer is 4."


@pytest.fixture(scope="module")
def r1_model(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.gguf_files import with_chat_template

    return with_chat_template(gemma_path, tmp_path_factory.mktemp("r1") / "gemma-r1.gguf",
                              template("deepseek-r1-distill-qwen.jinja"))


@pytest.fixture(scope="module")
def qwen3_model(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.gguf_files import with_chat_template

    return with_chat_template(gemma_path, tmp_path_factory.mktemp("q3") / "gemma-qwen3.gguf",
                              template("qwen3-0.6b.jinja"))


@pytest.fixture
def service(data_dir: Path):  # noqa: ANN201
    from desktop.core.chat.service import ChatService
    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                       "max_tokens": 24}
    yield ChatService(ctx)
    ctx.close()


def test_real_model_thinking_is_split_streamed_and_stored_apart(service, r1_model: Path) -> None:
    from desktop.core.chat.templates import parts_text

    model = service.load_model(r1_model, n_ctx=2048)
    assert service.reasoning_format(model) == THINK
    conversation = service.new_conversation(system_prompt="")
    thinking: list[str] = []
    answer: list[str] = []
    reply = service.send(conversation.id, ASK, on_text=answer.append,
                         on_reasoning=thinking.append)
    assert reply.state == "done"
    assert reply.reasoning and reply.content
    assert reply.reasoning == "".join(thinking) and reply.content == "".join(answer)
    for field in (reply.reasoning, reply.content):
        assert not field.startswith(("<think>", "</think>")) and field == field.lstrip()
    assert "</think>" not in reply.reasoning  # the first </think> ends the thinking
    assert reply.reasoning_s is not None and reply.reasoning_s >= 0
    stored = service.ctx.chats.message(reply.id)
    assert (stored.reasoning, stored.content) == (reply.reasoning, reply.content)

    # The same prompt, streamed raw by the same worker and split here after the fact, splits
    # the same way: the worker's per-token feeding agrees with parsing the whole text.
    parts = service.build_prompt(conversation, model, service.sampling(conversation),
                                 exclude=reply.id)
    raw = "".join(service.ctx.engine.generate(parts, {**service.sampling(conversation),
                                                      "stop": []}))
    parser = ReasoningParser(THINK, parts_text(parts)[-256:])
    first, rest = parser.feed(raw), parser.finish()
    assert (first[0] + rest[0], first[1] + rest[1]) == (reply.reasoning, reply.content)

    # The next turn's prompt carries the answer but not the thinking (a stable prefix).
    service.ctx.chats.add_message(conversation.id, "user", "And then?")
    following = parts_text(service.build_prompt(conversation, model,
                                                service.sampling(conversation)))
    assert f"<｜Assistant｜>{reply.content}<｜end▁of▁sentence｜>" in following
    # (The model's thinking repeats the question, so look only after the first question.)
    assert reply.reasoning not in following.split("<｜Assistant｜>", 1)[1]


def test_real_model_thinking_switch_reaches_the_template(service, qwen3_model: Path) -> None:
    from desktop.core.chat.templates import parts_text

    model = service.load_model(qwen3_model, n_ctx=2048)
    assert service.thinking_controls(model) == {"thinking_switch": True, "effort": False}
    conversation = service.new_conversation(system_prompt="", settings={"thinking": False})
    service.ctx.chats.add_message(conversation.id, "user", "Hi")
    prompt = parts_text(service.build_prompt(conversation, model, {}))
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    reply = service.answer(conversation.id, service.ctx.chats.messages(conversation.id)[-1])
    # Thinking was closed by the template: the reply is all answer.
    assert reply.reasoning is None and reply.content
    conversation = service.ctx.chats.update_conversation(conversation.id,
                                                         settings={"thinking": True})
    assert parts_text(service.build_prompt(conversation, model, {})).endswith(
        "<|im_start|>assistant\n")
