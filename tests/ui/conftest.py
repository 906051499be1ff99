"""Fixtures of the web view tests: a state database with missions, and the app over it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from coditect.bus.memory import MemoryBus
from coditect.config import Settings
from coditect.domain.events import AgentAct, AgentThink, MissionState, TaskState
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun, TestTotals
from coditect.domain.tasks import GoalState, Intent
from coditect.llm.ledger import CallContext, LedgerEntry, SqliteLedger

DIFF = """\
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,4 @@
 def add(a, b):
     return a + b
+def fib(n):
+    return n if n < 2 else fib(n - 1) + fib(n - 2)
"""


def sample_report(mission_id: str = "m-sample", **update) -> MissionReport:
    tasks = [
        TaskRun(id="t1", intent=Intent.ANALYZE, agent="analyzer", status=GoalState.COMPLETE),
        TaskRun(
            id="t2",
            intent=Intent.WRITE_CODE,
            agent="coder",
            depends_on=["t1"],
            status=GoalState.COMPLETE,
            input_tokens=300,
            output_tokens=70,
            duration_s=1.5,
        ),
        TaskRun(
            id="t3",
            intent=Intent.RUN_TESTS,
            agent="tester",
            depends_on=["t2"],
            status=GoalState.FAILED,
            superseded_by="retest1",
            error="1 failed, 0 errors, 2 passed\n- tests/test_calc.py::test_fib [assertion]: 5 != 8",
        ),
        TaskRun(
            id="repair1",
            intent=Intent.WRITE_CODE,
            agent="coder",
            depends_on=["t2"],
            status=GoalState.COMPLETE,
        ),
        TaskRun(
            id="retest1",
            intent=Intent.RUN_TESTS,
            agent="tester",
            depends_on=["repair1"],
            status=GoalState.COMPLETE,
        ),
    ]
    fields = dict(
        mission_id=mission_id,
        status=MissionOutcome.SUCCESS,
        request="Add fib <script>alert(1)</script>",
        repo="/tmp/project",
        branch=f"coditect/{mission_id}",
        model="scripted",
        tasks=tasks,
        changed_files=["calc.py"],
        diff=DIFF,
        tests=TestTotals(passed=3),
        wall_s=4.2,
    )
    fields.update(update)
    return MissionReport(**fields)


def sample_events(mission_id: str):
    return [
        MissionState(mission_id=mission_id, state=GoalState.RUNNING),
        TaskState(mission_id=mission_id, task_id="t1", agent="analyzer", state=GoalState.RUNNING),
        AgentThink(mission_id=mission_id, task_id="t2", agent="coder", text="asking for code"),
        AgentAct(
            mission_id=mission_id,
            task_id="t2",
            agent="coder",
            action="generate",
            detail="usable",
            input_tokens=300,
            output_tokens=70,
            duration_s=1.5,
        ),
        MissionState(mission_id=mission_id, state=GoalState.COMPLETE),
    ]


@pytest.fixture
def settings():
    return Settings()


@pytest.fixture
def source(settings):
    from coditect.ui.source import MissionSource

    settings.home.mkdir(parents=True, exist_ok=True)
    src = MissionSource(settings.database_url)
    yield src
    asyncio.run(src.close())


def _seed(source, count: int, *, statuses=("SUCCESS", "FAILED", "RUNNING")):
    """``count`` missions, one minute apart, the newest last in the list's order."""
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def go():
        for i in range(count):
            status = MissionOutcome(statuses[i % len(statuses)])
            report = sample_report(
                f"m-{i:05d}",
                status=status,
                request=f"request number {i}",
                started_at=start + timedelta(minutes=i),
            )
            await source.store.save_report(report)

    asyncio.run(go())


@pytest.fixture
def sample(source, settings):
    report = sample_report()

    async def go():
        await source.store.save_report(report)
        await source.store.append_events(sample_events(report.mission_id))
        ledger = SqliteLedger(settings.database_url)
        ctx = CallContext(mission_id=report.mission_id, task_id="t2", agent="coder")
        await ledger.record(
            LedgerEntry(
                mission_id=ctx.mission_id,
                task_id=ctx.task_id,
                agent=ctx.agent,
                model="scripted",
                input_tokens=300,
                output_tokens=70,
                usd=0.0012,
            )
        )
        await ledger.close()

    asyncio.run(go())
    return report


@pytest.fixture
def make_client(source, settings):
    from starlette.testclient import TestClient

    from coditect.ui.app import UiState, create_app
    from coditect.ui.launcher import Launcher
    from coditect.ui.security import Guard

    clients = []

    def make(*, token: str = "", host: str = "127.0.0.1", read_only: bool = False, **kw):
        bus = MemoryBus()
        state = UiState(
            source=source,
            guard=Guard(host, token),
            bus=bus,
            launcher=None if read_only else Launcher(settings, bus),
            poll_s=0.02,
        )
        client = TestClient(create_app(state), base_url="http://127.0.0.1:8420", **kw)
        client.__enter__()
        clients.append(client)
        client.ui_state = state
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def seed(source):
    """Store ``count`` missions: ``seed(count)``."""
    return lambda count, **kw: _seed(source, count, **kw)


@pytest.fixture
def report_factory():
    return sample_report


@pytest.fixture
def events_factory():
    return sample_events
