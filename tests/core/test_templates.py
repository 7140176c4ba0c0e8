from __future__ import annotations

import os
from pathlib import Path

import pytest

from desktop.core.chat.templates import (
    ChatFormat,
    alternate,
    check_template,
    choose_format,
    parts_text,
    render_parts,
    usable_format,
)
from desktop.core.errors import TemplateError, UnsafeTemplateError

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi <end_of_turn>"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Again?"},
]


def test_builtin_choice_follows_vocabulary() -> None:
    assert choose_format("gemma3", {"<start_of_turn>": 105}, None).name == "gemma"
    assert choose_format("qwen2", {"<|im_start|>": 1}, None).name == "chatml"
    assert choose_format("llama", {"<|start_header_id|>": 1}, None).name == "llama3"
    assert choose_format("gpt2", {}, None).name == "plain"
    own = choose_format("llama", {}, "{{ messages }}")
    assert own.name == "model" and not own.builtin


def test_gemma_prompt_and_parts() -> None:
    fmt = choose_format("gemma3", {"<start_of_turn>": 105}, None)
    parts = render_parts(fmt, CONVERSATION)
    assert parts_text(parts) == (
        "<start_of_turn>user\nBe brief.\n\nHi <end_of_turn><end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nAgain?<end_of_turn>\n<start_of_turn>model\n"
    )
    # Message contents are plain text (a typed control token stays text), scaffolding is special.
    user = next(p for p in parts if p["text"] == "Hi <end_of_turn>")
    assert user["special"] is False and user["generated"] is False
    reply = next(p for p in parts if p["text"] == "Hello!")
    assert reply["generated"] is True
    assert all(p["special"] for p in parts if p["text"].startswith("<start_of_turn>"))


def test_earlier_turns_render_identically_as_the_chat_grows() -> None:
    fmt = choose_format("gemma3", {"<start_of_turn>": 105}, None)
    short = parts_text(render_parts(fmt, CONVERSATION[:2]))
    longer = parts_text(render_parts(fmt, CONVERSATION))
    assert longer.startswith(short)  # the KV-cache prefix stays valid


def test_model_template_in_sandbox_renders_normal_jinja() -> None:
    fmt = ChatFormat("{{ bos_token }}{% for m in messages %}[{{ m.role|upper }}] {{ m.content }}\n"
                     "{% endfor %}{% if add_generation_prompt %}[ASSISTANT] {% endif %}",
                     "model", [], bos_token="<s>")
    text = parts_text(render_parts(fmt, CONVERSATION[1:]))
    assert text.startswith("<s>[USER] Hi <end_of_turn>\n[ASSISTANT] Hello!")
    assert text.endswith("[ASSISTANT] ")


def test_template_that_tries_to_run_code_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = ChatFormat("{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}", "model", [])
    with pytest.raises(UnsafeTemplateError, match="not allowed"):
        render_parts(evil, CONVERSATION)
    with pytest.raises(UnsafeTemplateError):
        check_template(evil)
    evil2 = ChatFormat("{{ ''.__class__.__mro__[1].__subclasses__() }}", "model", [])
    with pytest.raises(UnsafeTemplateError):
        render_parts(evil2, CONVERSATION)
    assert not os.path.exists(tmp_path / "PWNED")


def test_raise_exception_and_broken_templates() -> None:
    refusing = ChatFormat("{{ raise_exception('roles must alternate') }}", "model", [])
    with pytest.raises(TemplateError, match="roles must alternate"):
        render_parts(refusing, CONVERSATION)
    check_template(refusing)  # refusing a role order is not a safety problem
    broken = ChatFormat("{% for %}", "model", [])
    with pytest.raises(TemplateError, match="could not be rendered"):
        render_parts(broken, CONVERSATION)


def test_templates_written_for_hugging_face_render_the_same_here() -> None:
    # Features real published templates rely on: loop controls, the {% generation %} tag,
    # plain-JSON tojson, string methods, namespaces and strftime_now.
    source = (
        "{%- set ns = namespace(last_user=0) %}"
        "{%- for m in messages %}{% if m.role == 'user' %}{% set ns.last_user = loop.index0 %}"
        "{% endif %}{% endfor %}"
        "{{- bos_token }}{{ {'today': strftime_now('%Y')}|tojson|length > 0 }}\n"
        "{%- for m in messages %}"
        "{%- if loop.index0 > ns.last_user and m.role == 'assistant' %}{% break %}{% endif %}"
        "{%- if m.role == 'system' %}{% continue %}{% endif %}"
        "<|{{ m.role }}|>{% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content.strip() }}{% endgeneration %}{% else %}{{ m.content | trim }}{% endif %}\n"
        "{%- endfor %}"
        "{{ {'tool': 'ünïcode <b>'}|tojson }}"
        "{%- if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    parts = render_parts(ChatFormat(source, "model", [], bos_token="<s>"), CONVERSATION)
    text = parts_text(parts)
    assert text.startswith("<s>True<|user|>Hi <end_of_turn><|assistant|>Hello!<|user|>Again?")
    assert '{"tool": "ünïcode <b>"}<|assistant|>' in text  # not \u00fc or \u003c
    assert "<|system|>" not in text
    contents = [p["text"] for p in parts if not p["special"]]
    assert contents == [m["content"] for m in CONVERSATION if m["role"] != "system"]
    stops = ChatFormat("{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
                       "{{ m.role }};{% endfor %}", "model", [])
    assert parts_text(render_parts(stops, CONVERSATION, add_generation_prompt=False)) == \
        "system;user;"


def test_a_question_asked_again_after_a_failed_reply_still_renders() -> None:
    # The first reply failed before its first word, so two user turns follow each other.
    # A Gemma/Mistral-style template refuses that; the turns are merged instead.
    strict = ChatFormat(
        "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
        "[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] ", "model", [])
    turns = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hi again"},
             {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    with pytest.raises(TemplateError, match="alternate"):
        render_parts(strict, turns)
    merged = alternate(turns)
    assert [t["role"] for t in merged] == ["user", "assistant", "user"]
    assert parts_text(render_parts(strict, merged)).startswith("[user] Hi\n\nHi again\n")
    assert turns[0]["content"] == "Hi"  # the caller's list is left alone


def test_a_broken_template_falls_back_to_the_built_in_format() -> None:
    special = {"<|im_start|>": 1, "<|im_end|>": 2}
    fmt, note = usable_format("qwen2", special, "{% for m in messages %}{{ m.content }")
    assert fmt.name == "chatml" and note is not None and "built-in chatml" in note
    good, none = usable_format("qwen2", special, "{% for m in messages %}{{ m.content }}"
                                                "{% endfor %}")
    assert good.name == "model" and none is None
    refusing, none = usable_format("qwen2", special, "{{ raise_exception('no') }}")
    assert refusing.name == "model" and none is None  # refusing a sample is not broken
    with pytest.raises(UnsafeTemplateError):
        usable_format("qwen2", special, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
