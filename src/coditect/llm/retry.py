"""Retries with exponential backoff and jitter, shared by the network providers.

The SDKs' own retries are switched off (``max_retries=0``) so that one loop, with an injectable
sleep and random source, decides: 429, 408, 409, 529 and 5xx answers and connection failures are
retried; ``retry-after`` (or ``retry-after-ms``) is honoured; every attempt has a hard timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from coditect.errors import ModelError, ModelUnavailableError

__all__ = [
    "RetryPolicy",
    "Sleep",
    "TranslatedError",
    "call_with_retries",
    "error_for_status",
    "parse_retry_after",
]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUSES = frozenset({408, 409, 429, 529})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_attempts: Attempts in total (1 = no retry).
        base_delay_s: Backoff before the second attempt; doubles each time.
        max_delay_s: Upper bound on one backoff and on an honoured ``retry-after``.
        timeout_s: Hard limit on one attempt; an attempt that takes longer is cancelled.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 120.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rand: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: The attempt that just failed.
            retry_after_s: What the server asked for, if anything; it wins over the backoff.
            rand: A number in [0, 1) for the jitter.
        """
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        backoff = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        # "Equal jitter": at least half the backoff, so retries never collapse to zero.
        return backoff / 2 + rand * backoff / 2


@dataclass(frozen=True)
class TranslatedError:
    """A backend error translated to ours, with the server's requested wait if it sent one."""

    error: ModelError
    retry_after_s: float | None = None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def error_for_status(
    status: int, message: str, *, provider: str, headers: Mapping[str, str], key_env: str = ""
) -> TranslatedError:
    """Translate an HTTP error status from a model API into a CODITECT error.

    Args:
        status: The HTTP status code.
        message: The server's error message.
        provider: A label for the messages, e.g. ``"Anthropic"``.
        headers: Response headers (for ``retry-after``).
        key_env: The environment variable holding the API key, named on 401/403.
    """
    if status in (401, 403):
        where = f"check {key_env}" if key_env else "check the API key"
        return TranslatedError(
            ModelError(
                f"{provider} rejected the credentials (HTTP {status}): {message}",
                retryable=False,
                hint=where,
            )
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        label = "overloaded" if status == 529 else "rate limited" if status == 429 else "failed"
        return TranslatedError(
            ModelUnavailableError(f"{provider} {label} (HTTP {status}): {message}", retryable=True),
            parse_retry_after(headers),
        )
    return TranslatedError(
        ModelError(f"{provider} refused the request (HTTP {status}): {message}", retryable=False)
    )


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    translate: Callable[[Exception], TranslatedError | None],
    *,
    policy: RetryPolicy,
    what: str,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or runs out of attempts.

    Args:
        call: Makes one attempt.
        translate: Maps a backend exception to our error; None means "not ours, re-raise".
        policy: Attempts, backoff and per-attempt timeout.
        what: Names the call in the timeout error, e.g. ``"Anthropic claude-haiku-4-5"``.
        sleep: Waits between attempts (tests inject a recorder).
        rand: Jitter source.

    Raises:
        ModelError: The last attempt's translated error (``retryable`` tells whether a later
            retry by the caller may help).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(policy.timeout_s):
                return await call()
        except TimeoutError as exc:
            failure = TranslatedError(
                ModelUnavailableError(
                    f"{what} did not answer within {policy.timeout_s:g} s", retryable=True
                )
            )
            cause: Exception = exc
        except Exception as exc:
            translated = translate(exc)
            if translated is None:
                raise
            failure, cause = translated, exc
        if not failure.error.retryable or attempt >= policy.max_attempts:
            raise failure.error from cause
        await sleep(policy.delay_s(attempt, failure.retry_after_s, rand()))
