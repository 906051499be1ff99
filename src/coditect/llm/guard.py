"""A global switch that stops real network model requests (so tests never reach a paid API).

Real network providers (:class:`~coditect.llm.anthropic.AnthropicModel`,
:class:`~coditect.llm.openai_compat.OpenAICompatModel`) call :func:`check_allowed` before every
request. The test suite turns the switch off for every test; a test that serves recorded exchanges
or talks to a local server turns it back on explicitly::

    with override_allow_model_requests(True):
        await model.request(messages)

Only this module's attribute is read, at call time, so ``guard.ALLOW_MODEL_REQUESTS = False`` works
as well as the context manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from coditect.errors import ModelUnavailableError

__all__ = ["ALLOW_MODEL_REQUESTS", "check_allowed", "override_allow_model_requests"]

ALLOW_MODEL_REQUESTS: bool = True
"""Whether real network providers may send requests. The test suite sets it False."""


def check_allowed(model_name: str) -> None:
    """Raise unless network model requests are allowed.

    Args:
        model_name: The model about to be called, named in the error.

    Raises:
        ModelUnavailableError: ``ALLOW_MODEL_REQUESTS`` is False (not retryable).
    """
    if not ALLOW_MODEL_REQUESTS:
        raise ModelUnavailableError(
            f"network model requests are disabled (refused a call to {model_name})",
            retryable=False,
            hint="wrap the call in coditect.llm.guard.override_allow_model_requests(True)",
        )


@contextmanager
def override_allow_model_requests(allow: bool) -> Iterator[None]:
    """Set ``ALLOW_MODEL_REQUESTS`` to ``allow`` inside the block, then restore it."""
    global ALLOW_MODEL_REQUESTS
    previous = ALLOW_MODEL_REQUESTS
    ALLOW_MODEL_REQUESTS = allow
    try:
        yield
    finally:
        ALLOW_MODEL_REQUESTS = previous
