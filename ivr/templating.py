"""Templates and conditions: Jinja2 in an immutable sandbox, never ``eval``.

Variables are strings available by name; an undefined name renders as the
empty string (and is false in a condition) instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SEQUENCE = 10_000  # largest string/list a '*' may build
MAX_EXPONENT = 64


class _Sandbox(ImmutableSandboxedEnvironment):
    """Also bounds ``*`` and ``**`` so a flow cannot build huge values."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError("exponent too large")
            return left**right
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int):
                if len(seq) * n > MAX_SEQUENCE:
                    raise SecurityError("result too large")
        return left * right


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=ChainableUndefined, autoescape=False)
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    return env


ENV = _make_env()


class TemplateProblem(Exception):
    """A template or condition failed to compile; ``line`` is 1-based in its text."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    try:
        return ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"bad template: {exc.message}", exc.lineno or 1) from None
    except TemplateError as exc:
        raise TemplateProblem(f"bad template: {exc}") from None


@lru_cache(maxsize=4096)
def compile_condition(source: str) -> Callable[..., Any]:
    try:
        return ENV.compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"bad expression: {exc.message}", exc.lineno or 1) from None
    except TemplateError as exc:
        raise TemplateProblem(f"bad expression: {exc}") from None


def render(source: str, variables: Mapping[str, str]) -> str:
    """Render; raises on runtime errors (the interpreter logs and uses '')."""
    return compile_template(source).render(dict(variables))


def evaluate(source: str, variables: Mapping[str, str]) -> bool:
    """Evaluate a condition; raises on runtime errors (the interpreter treats them as false)."""
    return bool(compile_condition(source)(**dict(variables)))
