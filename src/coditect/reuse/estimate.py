"""A cost estimate for a plan, shown before execution.

Each task that calls the model is estimated at a typical prompt and answer size (below; measured
on the example missions of examples/requests.txt with the embedded model) and priced with the
price table. Tasks whose result will be reused are free; analysis and test runs make no call.
"""

from __future__ import annotations

from dataclasses import dataclass

from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import Intent
from coditect.llm.pricing import estimate_usd, price_for

__all__ = ["TYPICAL_TOKENS", "PlanEstimate", "estimate_plan"]

#: (input, output) tokens of one typical call per intent.
TYPICAL_TOKENS: dict[Intent, tuple[int, int]] = {
    Intent.WRITE_CODE: (700, 250),
    Intent.WRITE_TESTS: (800, 350),
}


@dataclass(frozen=True)
class PlanEstimate:
    """Estimated LLM use of the plan's remaining tasks."""

    tokens: int
    usd: float
    llm_tasks: int


def estimate_plan(
    graph: TaskGraph, model: str, *, skip: frozenset[str] = frozenset()
) -> PlanEstimate:
    """Estimate the calls of ``graph``'s tasks (``skip``: ids expected to be reused)."""
    price = price_for(model)
    tokens, usd, n = 0, 0.0, 0
    for task in graph:
        sizes = TYPICAL_TOKENS.get(task.intent)
        if sizes is None or task.id in skip:
            continue
        n += 1
        tokens += sizes[0] + sizes[1]
        usd += estimate_usd(sizes[0], sizes[1], price)
    return PlanEstimate(tokens=tokens, usd=round(usd, 6), llm_tasks=n)
