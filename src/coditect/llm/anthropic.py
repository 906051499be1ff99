"""Claude through the official ``anthropic`` SDK (optional: ``pip install anthropic``).

The system prompt is sent as a cached block (``cache_control: ephemeral``): agents reuse the same
long system prompt on every call, and cache reads cost a tenth of the input price. Retries are
ours (see :mod:`coditect.llm.retry`), not the SDK's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coditect.errors import ConfigError, ModelError, ModelOutputError, ModelUnavailableError
from coditect.llm import guard
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings, Usage
from coditect.llm.retry import (
    RetryPolicy,
    Sleep,
    TranslatedError,
    call_with_retries,
    error_for_status,
)

if TYPE_CHECKING:
    import httpx2

__all__ = ["API_KEY_ENV", "AnthropicModel"]

API_KEY_ENV = "ANTHROPIC_API_KEY"
_INSTALL_HINT = "pip install anthropic"


def _import_sdk() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise ModelUnavailableError(
            "the Anthropic SDK is not installed", retryable=False, hint=_INSTALL_HINT
        ) from exc
    return anthropic


class AnthropicModel(Model):
    """A Claude model on the Anthropic Messages API.

    Args:
        model: The model id, e.g. ``"claude-sonnet-4-5"``.
        api_key: The API key; defaults to the ``ANTHROPIC_API_KEY`` environment variable.
        base_url: Overrides the API URL (proxies, gateways).
        http_client: An ``httpx2.AsyncClient`` for the SDK (tests inject a mock transport).
        retry: Attempts, backoff and the hard per-attempt timeout.
        cache_system_prompt: Mark the system prompt for Anthropic's prompt cache.
        sleep: Waits between retries (injectable for tests).

    Raises:
        ConfigError: No API key was given and ``ANTHROPIC_API_KEY`` is not set.
        ModelUnavailableError: The ``anthropic`` package is not installed.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        cache_system_prompt: bool = True,
        sleep: Sleep | None = None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ConfigError(
                f"no Anthropic API key: set {API_KEY_ENV}",
                hint=f"export {API_KEY_ENV}=sk-ant-... or use --llm local",
            )
        self._sdk = _import_sdk()
        self.model = model
        self.retry = retry or RetryPolicy()
        self.cache_system_prompt = cache_system_prompt
        self._sleep = sleep
        self._client = self._sdk.AsyncAnthropic(
            api_key=key,
            base_url=base_url,
            max_retries=0,
            timeout=self.retry.timeout_s,
            http_client=http_client,
        )

    @property
    def name(self) -> str:
        """``anthropic:<model id>``."""
        return f"anthropic:{self.model}"

    def build_request(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        """The keyword arguments for ``messages.create`` (public so tests can inspect them)."""
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": settings.max_tokens,
            # No temperature: API version 2026-10-21 (sent by SDK 2.x) rejects sampling
            # parameters, so settings.temperature cannot be honoured here.
            "messages": [
                {"role": m.role, "content": m.content} for m in messages if m.role != "system"
            ],
        }
        if system:
            block: dict[str, Any] = {"type": "text", "text": system}
            if self.cache_system_prompt:
                block["cache_control"] = {"type": "ephemeral"}
            body["system"] = [block]
        if settings.stop:
            body["stop_sequences"] = list(settings.stop)
        if settings.json_schema is not None:
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": settings.json_schema}
            }
        return body

    @property
    def context_window(self) -> int:
        """200,000 tokens: the window of every current Claude model."""
        return 200_000

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Send ``messages`` to Claude.

        Raises:
            ModelUnavailableError: Overloaded, rate limited, 5xx, timeout or unreachable
                (retryable) after the retries ran out, or requests are disabled by the guard.
            ModelError: The key was rejected (401/403) or the request was invalid (not retryable).
            ModelOutputError: The answer held no text.
        """
        guard.check_allowed(self.name)
        settings = settings or ModelSettings()
        body = self.build_request(messages, settings)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"sleep": self._sleep} if self._sleep else {}
        message = await call_with_retries(
            lambda: self._client.messages.create(**body),
            self._translate,
            policy=self.retry,
            what=f"Anthropic {self.model}",
            **kwargs,
        )
        return self._parse(message, time.perf_counter() - started)

    def _parse(self, message: Any, latency_s: float) -> ModelResponse:
        texts = [b.text for b in message.content if getattr(b, "type", "") == "text"]
        if not texts and message.stop_reason != "max_tokens":
            raise ModelOutputError(f"{self.name} answered without text ({message.stop_reason})")
        usage = message.usage
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        return ModelResponse(
            text="".join(texts),
            # Anthropic's input_tokens excludes cache reads and writes; ours includes them.
            usage=Usage(
                input_tokens=usage.input_tokens + cache_read + cache_write,
                output_tokens=usage.output_tokens,
                cached_input_tokens=cache_read,
            ),
            model_name=self.name,
            latency_s=latency_s,
            finish_reason=message.stop_reason or "",
        )

    def _translate(self, exc: Exception) -> TranslatedError | None:
        sdk = self._sdk
        if isinstance(exc, sdk.APIStatusError):
            return error_for_status(
                exc.status_code,
                _error_message(exc),
                provider="Anthropic",
                headers=exc.response.headers,
                key_env=API_KEY_ENV,
            )
        if isinstance(exc, sdk.APITimeoutError):
            return TranslatedError(
                ModelUnavailableError(f"Anthropic {self.model} timed out", retryable=True)
            )
        if isinstance(exc, sdk.APIConnectionError):
            return TranslatedError(
                ModelUnavailableError(
                    f"cannot reach the Anthropic API at {self._client.base_url}: {exc}",
                    retryable=True,
                )
            )
        if isinstance(exc, sdk.AnthropicError):
            return TranslatedError(ModelError(f"Anthropic SDK error: {exc}", retryable=False))
        return None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
