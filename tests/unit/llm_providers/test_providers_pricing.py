"""The price table and cost arithmetic."""

from __future__ import annotations

import pytest

from coditect.llm.base import Usage
from coditect.llm.pricing import PRICES, cost_usd, estimate_usd, price_for


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic:claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic:claude-haiku-4-5", "claude-haiku-4-5"),
        ("anthropic:claude-opus-4-1", "claude-opus-4-1"),
        ("openai:gpt-4o-mini@https://api.openai.com/v1", "gpt-4o-mini"),
        ("openai:gpt-4o-2024-08-06@https://api.openai.com/v1", "gpt-4o"),
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_longest_prefix_wins(name: str, key: str) -> None:
    assert price_for(name) == PRICES[key]


@pytest.mark.parametrize(
    "name",
    [
        "local:qwen2.5-coder-1.5b-instruct-q4_k_m",
        "openai:qwen2.5-coder@http://localhost:11434/v1",
        "openai:gpt-4o@http://127.0.0.1:8080/v1",
        "openai:llama@http://10.0.0.7:8000/v1",
    ],
)
def test_local_and_self_hosted_are_free(name: str) -> None:
    price = price_for(name)
    assert price.priced
    assert cost_usd(Usage(input_tokens=10**6, output_tokens=10**6), price) == 0.0


def test_unknown_model_is_free_but_flagged() -> None:
    price = price_for("openai:mystery-model@https://api.example.com/v1")
    assert not price.priced
    assert price.input_per_mtok == price.output_per_mtok == 0.0


def test_cost_splits_cached_input() -> None:
    price = price_for("anthropic:claude-sonnet-4-5")  # 3 / 0.30 / 15 per MTok
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    assert cost_usd(usage, price) == pytest.approx(0.6 * 3 + 0.4 * 0.30 + 0.1 * 15)
    assert estimate_usd(1_000_000, 100_000, price) == pytest.approx(3 + 1.5)
