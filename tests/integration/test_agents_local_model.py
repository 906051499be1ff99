"""The worker agents with the embedded model, for real, on a fresh copy of examples/calculator.

Analyzer -> Coder (write_code) -> Coder (write_tests) -> Tester (subprocess sandbox), for the
request the demo uses. Slow (the model writes about 200 tokens); no timing is asserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from coditect.agents import AgentContext, AnalyzerAgent, CoderAgent, TesterAgent, Upstream  # noqa: E402
from coditect.domain.actions import Action, ActionKind  # noqa: E402
from coditect.domain.tasks import Intent, TaskSpec  # noqa: E402
from coditect.llm import LocalModel  # noqa: E402
from coditect.sandbox.subprocess import SubprocessSandbox  # noqa: E402

# A shared 2-core machine can make the model 10x slower than its 35 tokens/s: allow for it.
pytestmark = [pytest.mark.local_model, pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "calculator"
REQUEST = "Add a function to calculate the nth Fibonacci number"


async def test_fibonacci_request_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path / "calculator"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    model = LocalModel()

    def ctx(tid: str, intent: Intent, kind: ActionKind, up: Upstream, **kw: object) -> AgentContext:
        desc = REQUEST if intent is not Intent.WRITE_TESTS else f"Write pytest tests for: {REQUEST}"
        return AgentContext(
            mission_id="it",
            request=REQUEST,
            task=TaskSpec(id=tid, intent=intent, description=desc),
            action=Action(intent=intent, kind=kind, **kw),  # type: ignore[arg-type]
            workspace=ws,
            model=model,
            sandbox=SubprocessSandbox(),
            upstream=up,
        )

    try:
        analysis = await AnalyzerAgent().run(
            ctx("a", Intent.ANALYZE, ActionKind.READ_FILES, Upstream())
        )
        code = await CoderAgent().run(
            ctx(
                "c",
                Intent.WRITE_CODE,
                ActionKind.WRITE_FILES,
                Upstream(analysis=analysis),
                write_files=("calculator/arithmetic.py",),
            )
        )
        tests = await CoderAgent().run(
            ctx(
                "t",
                Intent.WRITE_TESTS,
                ActionKind.WRITE_FILES,
                Upstream(analysis=analysis, code=(code,)),
                write_files=("tests/test_arithmetic.py",),
            )
        )
    finally:
        await model.aclose()
    report = await TesterAgent().run(
        ctx(
            "r",
            Intent.RUN_TESTS,
            ActionKind.RUN_COMMAND,
            Upstream(code=(code, tests)),
            command=(
                "python",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--junitxml=.coditect/junit.xml",
            ),
            timeout_s=120,
        )
    )
    assert "fibonacci" in code.edits[0].added_symbols  # type: ignore[union-attr]
    assert any(s.startswith("test_") for s in tests.edits[0].added_symbols)  # type: ignore[union-attr]
    assert report.ok, report.failures  # type: ignore[union-attr]
    assert report.passed >= 9  # type: ignore[union-attr]
