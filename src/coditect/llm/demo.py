"""A scripted model that completes the Fibonacci mission on examples/calculator without an LLM.

Used by the end-to-end tests (one process and distributed) and selectable as
``--llm scripted:fibonacci``, so the whole pipeline can be exercised offline in seconds.
It answers by the request's ``purpose`` (``plan``, ``code``, ``tests``) or, failing that, by
what the prompt asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coditect.llm.base import DEFAULT_CONTEXT_WINDOW, Message, Model, ModelSettings
from coditect.llm.testing import FunctionModel

__all__ = [
    "DEMO_MODELS",
    "FIBONACCI_CODE",
    "FIBONACCI_PLAN",
    "FIBONACCI_TESTS",
    "fibonacci_model",
]

FIBONACCI_PLAN = """\
t1 analyze
t2 write_code after t1 file calculator/arithmetic.py
t3 write_tests after t2 file tests/test_arithmetic.py
t4 run_tests after t3"""

FIBONACCI_CODE = '''\
```python
def fibonacci(n):
    """Return the nth Fibonacci number (fibonacci(0) == 0, fibonacci(1) == 1)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
```'''

FIBONACCI_TESTS = """\
```python
import pytest

from calculator.arithmetic import fibonacci


def test_fibonacci_first_values():
    assert [fibonacci(n) for n in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]


def test_fibonacci_negative():
    with pytest.raises(ValueError):
        fibonacci(-1)
```"""


def _answer(messages: Sequence[Message], settings: ModelSettings) -> str:
    purpose = settings.purpose
    prompt = messages[-1].content.lower() if messages else ""
    if purpose == "plan" or (not purpose and "plan" in messages[0].content.lower()):
        return FIBONACCI_PLAN
    if "test" in purpose or (not purpose and "test" in prompt.split("\n", 1)[0]):
        return FIBONACCI_TESTS
    return FIBONACCI_CODE


def fibonacci_model(*, context_window: int = DEFAULT_CONTEXT_WINDOW) -> FunctionModel:
    """The scripted Fibonacci model (claiming ``context_window`` tokens, the embedded model's)."""
    return FunctionModel(_answer, name="scripted:fibonacci", context_window=context_window)


#: The scripted models ``--llm scripted:<name>`` chooses from (as any other model is chosen).
DEMO_MODELS: dict[str, Callable[[], Model]] = {"fibonacci": fibonacci_model}
