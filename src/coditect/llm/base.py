"""The Model interface: one required method, ``request``.

Every backend (embedded llama.cpp, Anthropic, OpenAI-compatible servers, the scripted test models)
implements :class:`Model`. Cross-cutting concerns (caching, cost accounting, budgets) wrap a Model
instead of living inside each backend.

Two optional abilities let callers build prompts that fit: :attr:`Model.context_window` (prompt
plus answer, in tokens) and :meth:`Model.count_tokens`. The embedded model answers both exactly
(llama.cpp's ``n_ctx`` and tokenizer); other backends use a documented, deliberately cautious
estimate (:data:`DEFAULT_CONTEXT_WINDOW`, :func:`estimate_tokens`). A wrapper that keeps the
wrapped model in ``inner`` answers with the wrapped model's figures without code of its own.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "Message",
    "Model",
    "ModelResponse",
    "ModelSettings",
    "Usage",
    "estimate_tokens",
    "prompt_budget",
]

#: Context window assumed for a model that does not report one: the smallest window of the
#: models CODITECT is used with (the embedded model runs with 4,096), so a prompt built for it
#: fits everywhere.
DEFAULT_CONTEXT_WINDOW = 4096
#: Tokens kept free for the chat template's role markers and the start of the answer.
_TEMPLATE_TOKENS_PER_MESSAGE = 8
_TEMPLATE_TOKENS = 32


def estimate_tokens(text: str) -> int:
    """A cautious token count without a tokenizer: one token per 3 bytes of UTF-8.

    BPE tokenizers of code models average 3.5-4.5 bytes per token on Python source, so this
    over-counts by 15-35%: a prompt that fits by this estimate fits in practice.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


_SURROGATES = re.compile("[\ud800-\udfff]")


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content")
    @classmethod
    def _valid_utf8(cls, content: str) -> str:
        # A file name that is not UTF-8 reaches Python as lone surrogates; no model API (nor the
        # response cache's key) can encode them, so they are shown as U+FFFD.
        return _SURROGATES.sub("\ufffd", content)


class ModelSettings(BaseModel):
    """Per-request generation settings.

    Attributes:
        max_tokens: Upper bound on generated tokens.
        temperature: 0 for deterministic output (the default: we want reproducible missions).
        stop: Strings that end generation.
        json_schema: When set, the backend constrains output to this JSON schema if it can.
        purpose: Short tag for accounting and routing, e.g. ``"plan"``, ``"code"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = 512
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    json_schema: dict[str, object] | None = None
    purpose: str = ""


class Usage(BaseModel):
    """Token usage as reported by the model itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


class ModelResponse(BaseModel):
    """A model's answer.

    Attributes:
        reused: True when the answer came from a response cache instead of a new call (its usage
            is the original call's; accounting counts it as zero new tokens).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    usage: Usage
    model_name: str
    latency_s: float = 0.0
    finish_reason: str = ""
    reused: bool = False


class Model(abc.ABC):
    """A language model that answers a list of messages."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A stable name such as ``local:qwen2.5-coder-1.5b-instruct-q4_k_m``."""

    @abc.abstractmethod
    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Send ``messages`` and return the answer.

        Raises:
            ModelUnavailableError: The model cannot be loaded or reached.
            ModelError: The call failed for another reason.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources (loaded weights, HTTP clients)."""

    @property
    def context_window(self) -> int:
        """Tokens the model accepts per call, prompt and answer together.

        The wrapped model's (a wrapper keeping it in ``inner``), else
        :data:`DEFAULT_CONTEXT_WINDOW`.
        """
        inner = getattr(self, "inner", None)
        return inner.context_window if isinstance(inner, Model) else DEFAULT_CONTEXT_WINDOW

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's tokenizer (the wrapped model's, else an estimate)."""
        inner = getattr(self, "inner", None)
        return inner.count_tokens(text) if isinstance(inner, Model) else estimate_tokens(text)


def prompt_budget(model: Model, max_tokens: int, messages: int = 4) -> int:
    """Tokens a prompt of ``messages`` messages may take so that ``max_tokens`` of answer fit."""
    overhead = _TEMPLATE_TOKENS + _TEMPLATE_TOKENS_PER_MESSAGE * messages
    return max(model.context_window - max_tokens - overhead, 0)
