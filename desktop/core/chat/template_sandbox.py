"""A Jinja sandbox with bounds on time, memory, recursion and output (issue 10, DESIGN 4).

Jinja's ImmutableSandboxedEnvironment stops a model file's template from running code
(CVE-2024-34359) but not from denial of service: `{{ 'x' * 10**10 }}` asks for 10 GB and two
nested `range(100000)` loops run for hours. A chat template renders a few messages into a
few kilobytes, so every render here gets a budget:

- *steps*: each loop iteration, call, filter and size measurement costs one; a render that
  spends `max_steps` stops (this is the deterministic bound: the same template stops at the
  same point on any machine), and a wall-clock deadline is a backstop;
- *size*: every value the template builds (by `*`, `+`, `~`, `%`, a literal, a call or a
  filter) is measured before it is built where the size can be predicted, and after
  otherwise; a value over `max_size` characters stops the render;
- *recursion*: macro calls nest at most `max_depth` deep;
- *output*: the rendered text is streamed and stops at `max_output` characters.

A render that exceeds a bound raises TemplateLimitError (one sentence), and the chat falls
back to the built-in format, as for any broken template.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from desktop.core.errors import TemplateError


class TemplateLimitError(TemplateError):
    """A chat template that needed more time, memory, recursion or output than a chat can."""


@dataclass(frozen=True)
class Limits:
    max_steps: int = 300_000  # ~1.5 s of Python here; a long chat's render takes ~10k
    max_size: int = 2_000_000  # characters (or list items, weighted by their own size)
    max_output: int = 2_000_000
    max_depth: int = 64
    deadline_s: float = 10.0


_INTERNAL = "__hearth_"  # names of the guards the AST pass inserts; templates may not use them
_WIDTH = re.compile(r"\d{7,}")  # a format width/precision of a million or more
_MAX_INT_BITS = 100_000


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.depth = 0
        self.deadline = time.monotonic() + limits.deadline_s
        self.sizes: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps measured objects alive so their ids stay unique

    def tick(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.limits.max_steps:
            raise TemplateLimitError(
                "The model's chat template needed too many steps to render (it loops far more "
                "than a chat needs), so Hearth stopped it.")
        if self.steps % 4096 < n and time.monotonic() > self.deadline:
            raise TemplateLimitError(
                "The model's chat template took too long to render, so Hearth stopped it.")

    def size(self, value: Any) -> int:
        """Characters `value` stands for, counting shared parts every time they appear (what
        printing or comparing it would cost). Memoized per object; every element costs a step."""
        if isinstance(value, str | bytes):
            return len(value)
        if not isinstance(value, list | tuple | dict | set | frozenset):
            return 1
        known = self.sizes.get(id(value))
        if known is not None:
            return known
        items: Iterable[Any] = value.items() if isinstance(value, dict) else value
        total = 1
        for item in items:
            self.tick()
            total += self.size(item)
            if total > self.limits.max_size:
                self.too_big()
        self.sizes[id(value)] = total
        self.keep.append(value)
        return total

    def check(self, value: Any) -> Any:
        if self.size(value) > self.limits.max_size:
            self.too_big()
        return value

    def expect(self, size: int) -> None:
        if size > self.limits.max_size:
            self.too_big()

    @staticmethod
    def too_big() -> None:
        raise TemplateLimitError(
            "The model's chat template tried to build a value far larger than a chat needs, "
            "so Hearth stopped it.")


_local = threading.local()


def _budget() -> _Budget:
    budget: _Budget | None = getattr(_local, "budget", None)
    # Outside render() (Jinja folding constants while it compiles): each operation is still
    # bounded by its own size prediction.
    return budget if budget is not None else _Budget(Limits())


def _predict_call(budget: _Budget, func: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> None:
    """Refuse, before running it, a call whose result size is a product of its inputs."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) > budget.limits.max_size:
            budget.too_big()
        budget.check(value)
    name = getattr(func, "__name__", "")
    owner = getattr(func, "__self__", None)
    text_method = isinstance(owner, str)
    if name == "replace" and text_method or name == "do_replace":
        operands = (owner, *args) if text_method else args
        text, old, new = (*operands[:3], "", "", "")[:3]
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            count = text.count(old) if old else len(text) + 1
            budget.expect(len(text) + count * max(0, len(new) - len(old)))
    elif name == "join" and text_method or name == "do_join":
        items = args[0] if args else ()
        sep = owner if text_method else (args[1] if len(args) > 1 else kwargs.get("d", ""))
        if isinstance(sep, str) and isinstance(items, list | tuple):
            budget.expect(budget.size(items) + len(sep) * len(items))
    elif name == "expandtabs" and isinstance(owner, str):
        width = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(width, int):
            budget.expect(len(owner) + owner.count("\t") * width)
    elif name == "do_indent" and args and isinstance(args[0], str):
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        width = len(width) if isinstance(width, str) else width
        if isinstance(width, int):
            budget.expect(len(args[0]) + (args[0].count("\n") + 1) * width)
    elif name in ("format", "format_map", "do_format"):
        for value in (owner, *args):
            if isinstance(value, str) and _WIDTH.search(value):
                budget.too_big()
    elif name == "_tojson":
        indent = kwargs.get("indent", args[2] if len(args) > 2 else None)
        if isinstance(indent, int) and indent > 16:
            budget.too_big()


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        plain = [a for a in args if not _is_jinja_internal(a)]
        _predict_call(budget, func, tuple(plain), kwargs)
        return budget.check(func(*args, **kwargs))

    guarded.__name__ = getattr(func, "__name__", "filter")
    pass_arg = getattr(func, "jinja_pass_arg", None)
    if pass_arg is not None:
        guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded


def _is_jinja_internal(value: Any) -> bool:
    # Filters marked pass_context/pass_eval_context/pass_environment get those first.
    module = type(value).__module__
    return module.startswith("jinja2.") and not isinstance(value, str)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's lorem-ipsum global with its sizes capped: lipsum(n=10**9) wrote gigabytes."""
    from jinja2.utils import generate_lorem_ipsum

    return generate_lorem_ipsum(n=clamp(n, 0, 20), html=html, min=clamp(min, 1, 100),
                                max=clamp(max, 1, 200))


def clamp(value: Any, low: int, high: int) -> int:
    return low if not isinstance(value, int) else max(low, min(high, value))


def _iterate(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.tick()
        yield item


def _concat(values: tuple[Any, ...]) -> str:
    budget = _budget()
    texts = [str(budget.check(v)) if not isinstance(v, str) else v for v in values]
    budget.expect(sum(len(t) for t in texts))
    return "".join(texts)


def _literal(value: Any) -> Any:
    return _budget().check(value)


class _Guards(NodeTransformer):
    """Route loops, `~` and literal containers through the budget before code generation."""

    def _call(self, name: str, arg: nodes.Node, lineno: int) -> nodes.Call:
        return nodes.Call(nodes.Name(_INTERNAL + name, "load", lineno=lineno), [arg], [],
                          None, None, lineno=lineno)

    # generic_visit transforms the children in place and returns the same node.
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("iter", node.iter, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("concat", nodes.Tuple(node.nodes, "load", lineno=node.lineno),
                          node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return self._call("literal", node, node.lineno)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return self._call("literal", node, node.lineno)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        if node.ctx != "load":  # loop targets and unpacking stay as they are
            return node
        return self._call("literal", node, node.lineno)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment whose every render is bounded (see the module's doc)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}
        self.globals["lipsum"] = _lipsum
        self.globals[_INTERNAL + "iter"] = _iterate
        self.globals[_INTERNAL + "concat"] = _concat
        self.globals[_INTERNAL + "literal"] = _literal

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        self.filters[name] = _guard_filter(func)

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        for node in source.find_all(nodes.Name):
            if node.name.startswith(_INTERNAL):
                raise TemplateError(f"The model's chat template uses a reserved name "
                                    f"({node.name}).")
        source = _Guards().visit(source)
        return super()._generate(source, name, filename, defer_init)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(times, int) and isinstance(seq, str | list | tuple):
                    budget.expect(budget.size(seq) * max(times, 0))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() * abs(right) > _MAX_INT_BITS:
                budget.too_big()
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                budget.expect(budget.size(left) + budget.size(right))
        elif operator == "%" and isinstance(left, str) and _WIDTH.search(left):
            budget.too_big()
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
            budget.too_big()  # numbers that double each step grow past any chat's need
        return budget.check(result)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _budget()
        budget.tick()
        _predict_call(budget, __obj, args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > budget.limits.max_depth:
                raise TemplateLimitError(
                    "The model's chat template calls itself too deeply, so Hearth stopped it.")
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return budget.check(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _WIDTH.search(value.__self__):
            _budget().too_big()  # '{:>999999999}'.format(1): a width of a billion spaces
        return wrapped

    def getattr(self, obj: Any, attribute: str) -> Any:
        _budget().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _budget().tick()
        return super().getitem(obj, argument)


def render(template: Any, limits: Limits, **variables: Any) -> str:
    """Render `template` (from a BoundedSandbox) within `limits`; TemplateLimitError if not.

    A RecursionError or MemoryError that slips past the predictions is reported the same
    way, so a hostile template never becomes a traceback."""
    previous = getattr(_local, "budget", None)
    budget = _local.budget = _Budget(limits)
    out: list[str] = []
    length = 0
    try:
        for chunk in template.generate(**variables):
            length += len(chunk)
            if length > limits.max_output:
                raise TemplateLimitError(
                    "The model's chat template produced far more text than the conversation "
                    "holds, so Hearth stopped it.")
            budget.tick()
            out.append(chunk)
    except RecursionError as exc:
        raise TemplateLimitError(
            "The model's chat template calls itself too deeply, so Hearth stopped it.",
            details=repr(exc)) from None
    except (MemoryError, OverflowError) as exc:
        raise TemplateLimitError(
            "The model's chat template tried to build a value far larger than a chat needs, "
            "so Hearth stopped it.", details=repr(exc)) from None
    finally:
        _local.budget = previous
    return "".join(out)
