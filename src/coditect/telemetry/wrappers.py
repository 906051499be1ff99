"""A model and a sandbox that count what passes through them (``coditect_llm_*``, ``coditect_sandbox_*``).

The distributed composition root wraps the model and the sandbox of each service with these,
so every backend is measured the same way without knowing about metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.pricing import cost_usd, price_for
from coditect.llm.wrapper import WrapperModel
from coditect.sandbox.base import Sandbox, SandboxRequest, SandboxResult
from coditect.telemetry import metrics, tracing

__all__ = ["MeteredModel", "MeteredSandbox", "sandbox_outcome"]


class MeteredModel(WrapperModel):
    """Counts calls, tokens and estimated cost of the wrapped model, and traces each call."""

    def __init__(self, inner: Model) -> None:
        super().__init__(inner)

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward the call, then count it (a reused answer counts no tokens)."""
        with tracing.span(
            "llm.request",
            attributes={
                "gen_ai.request.model": self.inner.name,
                "coditect.purpose": (settings.purpose if settings else ""),
            },
        ) as span:
            response = await self.inner.request(messages, settings)
            usage = response.usage
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        model = response.model_name or self.inner.name
        metrics.LLM_REQUESTS.labels(model=model).inc()
        if not response.reused:
            metrics.LLM_TOKENS.labels(model=model, kind="input").inc(usage.input_tokens)
            metrics.LLM_TOKENS.labels(model=model, kind="cached_input").inc(
                usage.cached_input_tokens
            )
            metrics.LLM_TOKENS.labels(model=model, kind="output").inc(usage.output_tokens)
            metrics.LLM_COST.labels(model=model).inc(cost_usd(usage, price_for(model)))
        return response


def sandbox_outcome(result: SandboxResult) -> str:
    """``ok``, ``nonzero_exit``, ``timeout`` or ``killed``."""
    if result.timed_out:
        return "timeout"
    if result.killed_by:
        return "killed"
    return "ok" if result.exit_code == 0 else "nonzero_exit"


class MeteredSandbox(Sandbox):
    """Counts runs of the wrapped sandbox by backend and outcome, and times them."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.name = inner.name

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Forward the run, then count it; a sandbox that fails to start counts as ``error``."""
        try:
            result = await self.inner.run(request)
        except Exception:
            metrics.SANDBOX_RUNS.labels(backend=self.inner.name, outcome="error").inc()
            raise
        backend = result.backend or self.inner.name
        metrics.SANDBOX_RUNS.labels(backend=backend, outcome=sandbox_outcome(result)).inc()
        metrics.SANDBOX_SECONDS.labels(backend=backend).observe(result.duration_s)
        return result

    def supports(self, argv: tuple[str, ...]) -> bool:
        """As the wrapped sandbox."""
        return self.inner.supports(argv)

    def project_problem(self, workdir: Path) -> str:
        """As the wrapped sandbox."""
        return self.inner.project_problem(workdir)

    def avoid(self, workdir: Path, backend: str) -> bool:
        """As the wrapped sandbox (``auto`` moves the project to another backend)."""
        return self.inner.avoid(workdir, backend)

    def allow(self, workdir: Path) -> None:
        """As the wrapped sandbox."""
        self.inner.allow(workdir)
