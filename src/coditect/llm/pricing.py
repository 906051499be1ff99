"""What a model call costs, in US dollars.

Prices are list prices per million tokens (standard tier, prompts up to 200k tokens) as published
on the providers' pricing pages (https://www.anthropic.com/pricing,
https://openai.com/api/pricing) when this table was written; prices change, so check those pages
before relying on a figure and update :data:`PRICES` when they differ.

Prompt-cache writes (Anthropic's ``cache_creation_input_tokens``) cost 1.25x the input price
(5-minute cache); providers without a write surcharge (OpenAI) bill them as plain input.

Model names are matched by their longest known prefix, so dated ids such as
``claude-sonnet-4-5-20250929`` find their family. Local and self-hosted models cost 0. An unknown
model also costs 0 but is flagged ``priced=False`` so reports can say the figure is incomplete.

Token semantics: ``Usage.input_tokens`` counts all prompt tokens, including the
``cached_input_tokens`` that were read from the provider's prompt cache and the
``cache_write_input_tokens`` that were written to it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from coditect.llm.base import Usage

__all__ = ["PRICES", "Price", "cost_usd", "estimate_usd", "price_for"]


@dataclass(frozen=True, kw_only=True)
class Price:
    """USD per million tokens.

    Attributes:
        input_per_mtok: Uncached prompt tokens.
        cached_input_per_mtok: Prompt tokens read from the provider's cache.
        output_per_mtok: Generated tokens.
        cache_write_per_mtok: Prompt tokens written to the provider's cache; None = the input
            price (no surcharge).
        priced: False when the model is unknown and the zero price is a guess.
    """

    input_per_mtok: float
    cached_input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float | None = None
    priced: bool = True


FREE = Price(input_per_mtok=0.0, cached_input_per_mtok=0.0, output_per_mtok=0.0)
UNKNOWN = Price(input_per_mtok=0.0, cached_input_per_mtok=0.0, output_per_mtok=0.0, priced=False)


def _p(input_: float, cached: float, output: float, write: float | None = None) -> Price:
    return Price(
        input_per_mtok=input_,
        cached_input_per_mtok=cached,
        output_per_mtok=output,
        cache_write_per_mtok=write,
    )


PRICES: dict[str, Price] = {
    # Anthropic: cache reads cost 0.1x the input price, 5-minute cache writes 1.25x.
    "claude-opus-4-5": _p(5.00, 0.50, 25.00, 6.25),
    "claude-opus-4-1": _p(15.00, 1.50, 75.00, 18.75),
    "claude-opus-4": _p(15.00, 1.50, 75.00, 18.75),
    "claude-sonnet-4-5": _p(3.00, 0.30, 15.00, 3.75),
    "claude-sonnet-4": _p(3.00, 0.30, 15.00, 3.75),
    "claude-3-7-sonnet": _p(3.00, 0.30, 15.00, 3.75),
    "claude-haiku-4-5": _p(1.00, 0.10, 5.00, 1.25),
    "claude-3-5-haiku": _p(0.80, 0.08, 4.00, 1.0),
    # OpenAI: cached prompt tokens cost 0.5x the input price for the 4o family.
    "gpt-4o": _p(2.50, 1.25, 10.00),
    "gpt-4o-mini": _p(0.15, 0.075, 0.60),
}
"""Known list prices, keyed by model-id prefix."""

_LOCAL_PREFIXES = ("local", "test", "scripted", "function")


def _is_self_hosted(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "") or host.endswith((".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def price_for(model_name: str) -> Price:
    """The price of a model, given its CODITECT name or a bare model id.

    Accepts ``local:...`` (free), ``anthropic:claude-haiku-4-5``,
    ``openai:gpt-4o-mini@https://api.openai.com/v1``, ``openai:qwen@http://localhost:11434/v1``
    (self-hosted: free) and bare ids such as ``gpt-4o``.
    """
    provider, sep, rest = model_name.partition(":")
    if not sep:
        provider, rest = "", model_name
    if provider in _LOCAL_PREFIXES:
        return FREE
    model_id, at, url = rest.partition("@")
    if at and _is_self_hosted(url):
        return FREE
    matches = [key for key in PRICES if model_id.lower().startswith(key)]
    if not matches:
        return UNKNOWN
    return PRICES[max(matches, key=len)]


def cost_usd(usage: Usage, price: Price) -> float:
    """The cost of one call's usage at ``price``."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_input_tokens, usage.input_tokens - cached)
    uncached = usage.input_tokens - cached - written
    write_price = price.input_per_mtok
    if price.cache_write_per_mtok is not None:
        write_price = price.cache_write_per_mtok
    return (
        uncached * price.input_per_mtok
        + cached * price.cached_input_per_mtok
        + written * write_price
        + usage.output_tokens * price.output_per_mtok
    ) / 1_000_000


def estimate_usd(input_tokens: int, output_tokens: int, price: Price) -> float:
    """An upper-bound style estimate, counting every prompt token as uncached."""
    return cost_usd(Usage(input_tokens=input_tokens, output_tokens=output_tokens), price)
