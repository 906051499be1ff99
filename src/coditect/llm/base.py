"""The Model interface: one required method, ``request``.

Every backend (embedded llama.cpp, Anthropic, OpenAI-compatible servers, the scripted test models)
implements :class:`Model`. Cross-cutting concerns (caching, cost accounting, budgets) wrap a Model
instead of living inside each backend.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["Message", "Model", "ModelResponse", "ModelSettings", "Usage"]


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
