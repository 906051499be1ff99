"""The checks every request passes before a mission starts, the same in both modes."""

from __future__ import annotations

from coditect.errors import InputError
from coditect.llm.base import Model

__all__ = ["MAX_REQUEST_SHARE", "check_request"]

#: The largest share of the model's context window a request may take. Every prompt carries the
#: request besides the code it concerns and room for the answer; a request over half the window
#: leaves too little for either, so it is refused instead of being cut (a cut request would be
#: a different request).
MAX_REQUEST_SHARE = 0.5


def check_request(request: str, model: Model) -> str:
    """The request without surrounding blanks, or an :class:`InputError` saying what is wrong.

    Raises:
        InputError: The request is empty, or too long for ``model``'s context window.
    """
    request = request.strip()
    if not request:
        raise InputError(
            "the request is empty", hint='say what to change, e.g. "Add a function ..."'
        )
    window = model.context_window
    limit = int(window * MAX_REQUEST_SHARE)
    tokens = model.count_tokens(request)
    if tokens > limit:
        raise InputError(
            f"the request is {tokens:,} tokens long; with {model.name}'s {window:,}-token "
            f"context window it may take at most {limit:,}",
            hint="shorten the request (put long material in a file of the repository), "
            "or use a model with a larger context window",
        )
    return request
