"""Any OpenAI-compatible chat-completions server through the ``openai`` SDK.

One wire format, many servers: the :class:`Provider` holds the connection (base URL, key, extra
headers), so the same :class:`OpenAICompatModel` talks to OpenAI, Ollama, vLLM, LM Studio and
llama.cpp's server. Retries are ours (see :mod:`coditect.llm.retry`), not the SDK's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

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

__all__ = ["OPENAI_API_KEY_ENV", "JsonSchemaStyle", "OpenAICompatModel", "Provider"]

JsonSchemaStyle = Literal["json_schema", "json_object", "none"]
"""How ``settings.json_schema`` goes on the wire: OpenAI's ``{"type": "json_schema", ...}``
(OpenAI, Ollama, vLLM, LM Studio, llama.cpp's ``llama-server``), llama-cpp-python's
``{"type": "json_object", "schema": ...}``, or not at all."""

OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"
_INSTALL_HINT = "pip install openai"


@dataclass(frozen=True, kw_only=True)
class Provider:
    """Where an OpenAI-compatible server lives and how to authenticate to it.

    Attributes:
        base_url: The API root, ending in ``/v1`` for most servers.
        api_key: The bearer key; local servers ignore it (``"unused"`` is sent).
        headers: Extra headers on every request.
        key_env: The environment variable the key came from, named in 401 errors.
    """

    base_url: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    key_env: str = ""

    @classmethod
    def openai(cls, api_key: str | None = None) -> Provider:
        """The OpenAI API; the key defaults to ``OPENAI_API_KEY``.

        Raises:
            ConfigError: No key was given and ``OPENAI_API_KEY`` is not set.
        """
        key = api_key or os.environ.get(OPENAI_API_KEY_ENV, "")
        if not key:
            raise ConfigError(
                f"no OpenAI API key: set {OPENAI_API_KEY_ENV}",
                hint="or point --llm at a local server: openai:<model>@http://localhost:11434/v1",
            )
        return cls(base_url=OPENAI_BASE_URL, api_key=key, key_env=OPENAI_API_KEY_ENV)

    @classmethod
    def ollama(cls, base_url: str = "http://localhost:11434/v1") -> Provider:
        """A local Ollama server."""
        return cls(base_url=base_url)

    @classmethod
    def vllm(
        cls, base_url: str = "http://localhost:8000/v1", api_key: str | None = None
    ) -> Provider:
        """A vLLM server (``vllm serve``)."""
        return cls(base_url=base_url, api_key=api_key)

    @classmethod
    def lm_studio(cls, base_url: str = "http://localhost:1234/v1") -> Provider:
        """LM Studio's local server."""
        return cls(base_url=base_url)

    @classmethod
    def llama_cpp(cls, base_url: str = "http://localhost:8080/v1") -> Provider:
        """llama.cpp's ``llama-server`` or ``python -m llama_cpp.server``."""
        return cls(base_url=base_url)


def _import_sdk() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ModelUnavailableError(
            "the OpenAI SDK is not installed", retryable=False, hint=_INSTALL_HINT
        ) from exc
    return openai


class OpenAICompatModel(Model):
    """A chat model on an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: The model id the server knows, e.g. ``"gpt-4o-mini"`` or ``"qwen2.5-coder"``.
        provider: Where the server is; see the :class:`Provider` constructors.
        http_client: An ``httpx2.AsyncClient`` for the SDK (tests inject a mock transport).
        retry: Attempts, backoff and the hard per-attempt timeout.
        json_schema_style: How ``settings.json_schema`` is sent as ``response_format``; see
            :data:`JsonSchemaStyle` (``"json_object"`` for ``python -m llama_cpp.server``).
        sleep: Waits between retries (injectable for tests).

    Raises:
        ModelUnavailableError: The ``openai`` package is not installed.
    """

    def __init__(
        self,
        model: str,
        *,
        provider: Provider,
        http_client: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        json_schema_style: JsonSchemaStyle = "json_schema",
        sleep: Sleep | None = None,
    ) -> None:
        self._sdk = _import_sdk()
        self.model = model
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self.json_schema_style = json_schema_style
        self._sleep = sleep
        self._client = self._sdk.AsyncOpenAI(
            base_url=provider.base_url,
            api_key=provider.api_key or "unused",
            default_headers=dict(provider.headers) or None,
            max_retries=0,
            timeout=self.retry.timeout_s,
            http_client=http_client,
        )

    @property
    def name(self) -> str:
        """``openai:<model>@<base url>``."""
        return f"openai:{self.model}@{self.provider.base_url}"

    def build_request(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create`` (public for tests)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
        }
        if settings.stop:
            body["stop"] = list(settings.stop)
        schema = settings.json_schema
        if schema is not None and self.json_schema_style == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema},
            }
        elif schema is not None and self.json_schema_style == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Send ``messages`` to the server.

        Raises:
            ModelUnavailableError: Unreachable (names the URL), rate limited, 5xx or timed out
                (retryable) after the retries ran out, or requests are disabled by the guard.
            ModelError: The key was rejected or the request was invalid (not retryable).
            ModelOutputError: The answer held no choice.
        """
        guard.check_allowed(self.name)
        settings = settings or ModelSettings()
        body = self.build_request(messages, settings)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"sleep": self._sleep} if self._sleep else {}
        completion = await call_with_retries(
            lambda: self._client.chat.completions.create(**body),
            self._translate,
            policy=self.retry,
            what=f"{self.model} at {self.provider.base_url}",
            **kwargs,
        )
        return self._parse(completion, time.perf_counter() - started)

    def _parse(self, completion: Any, latency_s: float) -> ModelResponse:
        if not completion.choices:
            raise ModelOutputError(f"{self.name} answered without a choice")
        choice = completion.choices[0]
        usage = completion.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        return ModelResponse(
            text=choice.message.content or "",
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                cached_input_tokens=cached,
            ),
            model_name=self.name,
            latency_s=latency_s,
            finish_reason=choice.finish_reason or "",
        )

    def _translate(self, exc: Exception) -> TranslatedError | None:
        sdk = self._sdk
        url = self.provider.base_url
        if isinstance(exc, sdk.APIStatusError):
            return error_for_status(
                exc.status_code,
                _error_message(exc),
                provider=f"the server at {url}",
                headers=exc.response.headers,
                key_env=self.provider.key_env,
            )
        if isinstance(exc, sdk.APITimeoutError):
            return TranslatedError(
                ModelUnavailableError(f"{self.model} at {url} timed out", retryable=True)
            )
        if isinstance(exc, sdk.APIConnectionError):
            return TranslatedError(
                ModelUnavailableError(
                    f"cannot connect to the OpenAI-compatible server at {url}",
                    retryable=True,
                    hint="is the server running? (e.g. `ollama serve`, "
                    "`python -m llama_cpp.server --model ...`)",
                )
            )
        if isinstance(exc, sdk.OpenAIError):
            return TranslatedError(ModelError(f"OpenAI SDK error: {exc}", retryable=False))
        return None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
