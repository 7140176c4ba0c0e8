"""A model file's chat template is untrusted: it cannot hang Hearth, eat its memory, print a
traceback, or lock a chat. Each class of attack is bounded and becomes one sentence, and a
model with such a template chats with the built-in format instead."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.chat.template_sandbox import TemplateLimitError
from desktop.core.chat.templates import ChatFormat, render_parts, usable_format
from desktop.core.context import AppContext
from desktop.core.errors import TemplateError, UnsafeTemplateError
from tests.gguf_files import with_chat_template

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Thanks"}]

# Each class of denial of service reported against the sandbox, and its relatives.
EXHAUSTING = {
    "list multiplication": "{% set a = [0] * 10**9 %}{{ a|length }}",
    "string multiplication": "{{ 'x' * 10**10 }}",
    "nested ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                     "{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                         "{% endmacro %}{{ f(40) }}",
    "doubling concatenation": "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(60) %}"
                              "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling addition": "{% set ns = namespace(s=['x']) %}{% for i in range(60) %}"
                         "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "nested literals": "{% set a = 'x' * 1000 %}{% set b = [a,a,a,a,a,a,a,a] %}"
                       "{% set c = [b,b,b,b,b,b,b,b] %}{% set d = [c,c,c,c,c,c,c,c] %}"
                       "{% set e = [d,d,d,d,d,d,d,d] %}{{ e }}",
    "padding method": "{{ 'x'.ljust(10**9) }}",
    "padding filter": "{{ 'x'|center(10**9) }}",
    "replace": "{{ ('a' * 100000).replace('', 'b' * 100000) }}",
    "printf width": "{{ '%0999999999d' % 1 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "nested format width": "{{ '{:{}}'.format(1, 999999999) }}",
    "squaring numbers": "{% set ns = namespace(x=10) %}{% for i in range(40) %}"
                        "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "huge power": "{{ 7 ** (10**9) }}",
    "indent": "{{ ('\n' * 100000)|indent(100000) }}",
    "join": "{{ ('x' * 1000000).join(['a'] * 1000) }}",
    "json indent": "{{ messages|tojson(indent=1000000) }}",
    "lipsum": "{{ lipsum(n=10**9) }}",
    "endless output": "{% for i in range(100000) %}{% for j in range(100) %}{{ 'y' * 1000 }}"
                      "{% endfor %}{% endfor %}",
    "range over the sandbox limit": "{% for i in range(10**7) %}{% endfor %}",
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", EXHAUSTING)
def test_exhausting_templates_stop_with_one_sentence(name: str) -> None:
    before = _peak_mb()
    with pytest.raises(TemplateError) as caught:
        render_parts(ChatFormat(EXHAUSTING[name], "model", []), CHAT)
    message = str(caught.value)
    assert message.startswith("The model's chat template") and "\n" not in message
    assert len(message) < 200
    # Bounded memory: nothing close to the gigabytes these templates ask for.
    assert _peak_mb() - before < 400


def test_every_exhausting_template_is_replaced_by_the_builtin_format() -> None:
    for name, source in EXHAUSTING.items():
        fmt, note = usable_format("gemma3", {"<start_of_turn>": 105}, source)
        assert fmt.name == "gemma", name
        assert note and "built-in gemma format" in note, name


@pytest.mark.parametrize("source, expected", [
    ("{% for %}", "could not be rendered"),                             # syntax error
    ("{{ messages[0].content.nope() }}", "could not be rendered"),     # runtime error
    ("{% if false %}x{% endif %}", "empty prompt"),                   # renders to nothing
    ("{{ __hearth_iter }}", "reserved name"),                          # reaching our guards
])
def test_broken_templates_are_one_sentence(source: str, expected: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_parts(ChatFormat(source, "model", []), CHAT)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert not isinstance(caught.value, UnsafeTemplateError)


def test_code_execution_is_still_refused_as_unsafe() -> None:
    for source in ("{{ lipsum.__globals__['os'].popen('id').read() }}",
                   "{{ ''.__class__.__mro__[1].__subclasses__() }}"):
        with pytest.raises(UnsafeTemplateError):
            render_parts(ChatFormat(source, "model", []), CHAT)


def test_limits_do_not_touch_real_templates_on_a_long_chat() -> None:
    # A Qwen-style template with a tool loop and namespace bookkeeping, over 400 messages.
    qwen = (
        "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
        "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
        "{%- if ns.multi_step_tool and message.role == 'user' %}"
        "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}"
        "{%- endif %}{%- endfor %}"
        "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\n' + "
        "message.content + '<|im_end|>' + '\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}")
    chat = [{"role": ("user", "assistant")[i % 2], "content": "word " * 200} for i in range(400)]
    parts = render_parts(ChatFormat(qwen, "model", []), chat)
    assert sum(1 for p in parts if not p["special"]) == 400


@pytest.fixture(scope="module")
def bad_template_models(tmp_path_factory: pytest.TempPathFactory,
                        gemma_path: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("templates")
    return {
        "syntax": with_chat_template(gemma_path, folder / "syntax.gguf", "{% for message in %}"),
        "exhausting": with_chat_template(gemma_path, folder / "dos.gguf", EXHAUSTING["nested ranges"]),
        "empty": with_chat_template(gemma_path, folder / "empty.gguf", "{% if false %}x{% endif %}"),
    }


@pytest.mark.parametrize("kind", ["syntax", "exhausting", "empty"])
def test_a_model_with_a_bad_template_loads_and_chats(kind: str, bad_template_models: dict,
                                                     data_dir: Path) -> None:
    """The worker loads the file (the binding never parses the template: a syntax error
    used to fail the load) and the chat answers with the built-in format, saying so."""
    ctx = AppContext(data_dir)
    try:
        ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                           "max_tokens": 4}
        service = ChatService(ctx)
        model = service.load_model(bad_template_models[kind], n_ctx=512)
        assert model.fmt.name == "gemma"
        assert model.warning and "built-in gemma format" in model.warning
        conversation = service.new_conversation()
        reply = service.send(conversation.id, "Hello")
        assert reply.state == "done" and reply.completion_tokens
    finally:
        ctx.close()


def test_limit_errors_are_template_errors() -> None:
    assert issubclass(TemplateLimitError, TemplateError)
