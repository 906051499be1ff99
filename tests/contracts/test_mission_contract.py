"""The same missions through both task ports, with the same reports, events and ledgers.

``inprocess`` is ``coditect run``: the coordinator and the agents in this process.
``distributed`` is ``coditect serve``: the same coordinator in the orchestrator service, tasks
through the task queue service (gRPC) onto NATS JetStream, a worker running the same task step,
task states in Redis, reports, events and the ledger in PostgreSQL (real servers on free ports,
from tests/infra). Models are scripted; everything else is real.

Each test states what the mission must come to; both ports must come to exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coditect.config import Settings
from coditect.domain import MissionOutcome, MissionReport
from coditect.llm.base import Model, ModelResponse, ModelSettings, Usage
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS
from coditect.llm.ledger import LedgerEntry
from coditect.llm.testing import FunctionModel

REQUEST = "Add a function to calculate the nth Fibonacci number"
_WAIT_S = 120.0
_CLOSE_S = 30.0
ModelFactory = Callable[[], Model]


def scripted(*, code: Any = FIBONACCI_CODE, tests: Any = FIBONACCI_TESTS) -> ModelFactory:
    """A factory of scripted models (each service and worker gets its own instance)."""

    def make() -> Model:
        codes = iter(code) if isinstance(code, list) else None

        def answer(messages: Any, settings: ModelSettings) -> Any:
            if settings.purpose == "plan":
                return FIBONACCI_PLAN
            if "test" in settings.purpose:
                return tests(messages, settings) if callable(tests) else tests
            if codes is not None:
                return next(codes, FIBONACCI_CODE)
            return code(messages, settings) if callable(code) else code

        return FunctionModel(answer)

    return make


async def _hang(messages: Any, settings: ModelSettings) -> str:
    await asyncio.sleep(600)
    return FIBONACCI_CODE


def _expensive_code(messages: Any, settings: ModelSettings) -> ModelResponse:
    """The right code, reported as if it had used a million tokens."""
    return ModelResponse(
        text=FIBONACCI_CODE,
        usage=Usage(input_tokens=900_000, output_tokens=100_000),
        model_name="test:function",
    )


@dataclass
class Mission:
    """What a finished mission left: its report, events and ledger entries."""

    report: MissionReport
    events: list[Any]
    ledger: list[LedgerEntry]

    def lifecycle(self) -> list[tuple[str, str, str]]:
        """The task and mission state events, in order (agent events differ by worker)."""
        return [
            (e.type, getattr(e, "task_id", ""), e.state.value)
            for e in self.events
            if e.type in ("task.state", "mission.state")
        ]

    def tasks(self) -> list[tuple[str, str, str, bool]]:
        return [(t.id, t.status.value, t.superseded_by, t.reused) for t in self.report.tasks]

    def calls(self) -> list[tuple[str, str, str, bool]]:
        """The ledger as (task, agent without its worker, purpose, reused)."""
        return [(e.task_id, e.agent.split("@")[0], e.purpose, e.reused) for e in self.ledger]


class Engine:
    """Runs missions through one port."""

    async def start(self, model: ModelFactory, **settings: Any) -> None:
        raise NotImplementedError

    async def submit(self, repo: Path, request: str = REQUEST) -> str:
        raise NotImplementedError

    async def finish(self, mission_id: str) -> Mission:
        raise NotImplementedError

    async def cancel(self, mission_id: str) -> None:
        raise NotImplementedError

    async def running(self, mission_id: str, task_id: str) -> None:
        """Return once ``task_id`` of the mission was announced RUNNING."""
        async with asyncio.timeout(_WAIT_S):
            while True:
                events = await self.stored_events(mission_id)
                if any(
                    e.type == "task.state" and e.task_id == task_id and e.state.value == "running"
                    for e in events
                ):
                    return
                await asyncio.sleep(0.05)

    async def stored_events(self, mission_id: str) -> list[Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def run(self, repo: Path, request: str = REQUEST) -> Mission:
        return await self.finish(await self.submit(repo, request))


@dataclass
class InProcess(Engine):
    home: Path
    rt: Any = None
    tasks: dict[str, asyncio.Task[MissionReport]] = field(default_factory=dict)

    async def start(self, model: ModelFactory, **settings: Any) -> None:
        from coditect.runtime import build_runtime

        self.rt = build_runtime(
            Settings(home=self.home, sandbox="subprocess", reuse_url="memory", **settings),
            model=model(),
        )

    async def submit(self, repo: Path, request: str = REQUEST) -> str:
        mid = "m-" + uuid.uuid4().hex[:12]
        self.tasks[mid] = asyncio.ensure_future(self.rt.runner.run(request, repo, mission_id=mid))
        return mid

    async def finish(self, mission_id: str) -> Mission:
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(_WAIT_S):
                await self.tasks[mission_id]
        report = await self.rt.store.get_report(mission_id)
        return Mission(
            report=report,
            events=await self.stored_events(mission_id),
            ledger=await self.rt.ledger.entries(mission_id),
        )

    async def cancel(self, mission_id: str) -> None:
        self.tasks[mission_id].cancel()

    async def stored_events(self, mission_id: str) -> list[Any]:
        return await self.rt.store.list_events(mission_id)

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.rt is not None:
            await self.rt.aclose()


@dataclass
class Distributed(Engine):
    common: dict[str, Any]
    closers: list[Any] = field(default_factory=list)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    client: Any = None
    store: Any = None
    ledger: Any = None

    async def start(self, model: ModelFactory, **settings: Any) -> None:
        from coditect.api.clients import ClientOptions, OrchestratorClient
        from coditect.distributed.settings import DistributedSettings
        from coditect.runtime import open_ledger, open_mission_store
        from coditect.runtime.distributed import (
            build_worker,
            start_orchestrator,
            start_taskqueue,
        )

        common = {**self.common, **settings}
        tq = await start_taskqueue(DistributedSettings(**common, listen="127.0.0.1:0"))
        self.closers.append(tq.stop)
        cfg = DistributedSettings(
            **common, listen="127.0.0.1:0", taskqueue=f"127.0.0.1:{tq.port}", worker_id="w1"
        )
        orch = await start_orchestrator(cfg, model=model())
        self.closers.append(orch.stop)
        worker, closers = await build_worker(cfg, model=model())
        self.closers.extend(closers)
        self.workers.append(asyncio.create_task(worker.run()))
        opts = ClientOptions(address=f"127.0.0.1:{orch.port}", token=common["token"])
        self.client = OrchestratorClient(opts)
        self.closers.append(self.client.aclose)
        self.store = open_mission_store(cfg.database_url)
        self.closers.append(self.store.close)
        self.ledger = open_ledger(cfg.database_url)
        self.closers.append(self.ledger.close)

    async def submit(self, repo: Path, request: str = REQUEST) -> str:
        resp = await self.client.submit(request, str(repo))
        return resp.mission_id

    async def finish(self, mission_id: str) -> Mission:
        async with asyncio.timeout(_WAIT_S):
            async for _event in self.client.watch(mission_id):
                pass
        return Mission(
            report=await self.store.get_report(mission_id),
            events=await self.stored_events(mission_id),
            ledger=await self.ledger.entries(mission_id),
        )

    async def cancel(self, mission_id: str) -> None:
        assert await self.client.cancel(mission_id, "cancelled by the user")

    async def stored_events(self, mission_id: str) -> list[Any]:
        return await self.store.list_events(mission_id)

    async def close(self) -> None:
        for w in self.workers:
            w.cancel()
        await _bounded(asyncio.gather(*self.workers, return_exceptions=True), "the worker")
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await _bounded(close(), getattr(close, "__qualname__", repr(close)))


async def _bounded(work: Any, what: str) -> None:
    """Await ``work`` for at most ``_CLOSE_S``; a piece that does not stop is named on stderr.

    Once in about 40 runs on a slow 2-core machine the distributed teardown after a cancelled
    mission did not end (not yet explained, see the fifteenth session's note); unbounded, it
    held the suite until pytest-timeout and left gRPC coroutines un-awaited that failed later
    tests of the same worker.
    """
    try:
        async with asyncio.timeout(_CLOSE_S):
            await work
    except TimeoutError:
        print(f"teardown: {what} did not stop within {_CLOSE_S:.0f}s", file=sys.stderr)


@pytest.fixture(params=["inprocess", "distributed"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """One task port: the same tests run on both."""
    made: Engine
    if request.param == "inprocess":
        made = InProcess(home=tmp_path / "home")
    else:
        made = Distributed(
            common={
                "home": tmp_path / "home",
                "nats_url": request.getfixturevalue("nats_url"),
                "redis_url": request.getfixturevalue("redis_url"),
                "db_url": request.getfixturevalue("fresh_postgres_url"),
                "token": "tok",
                "queue_name": "t" + uuid.uuid4().hex[:10],
                "connect_wait_s": 3.0,
                "ack_wait_s": 10.0,
                "state_retention_s": 3600.0,
                "sandbox": "subprocess",
            }
        )
    yield made
    await made.close()


def _run(task: str, end: str = "complete") -> list[tuple[str, str, str]]:
    return [("task.state", task, "running"), ("task.state", task, end)]


_START = [("mission.state", "", "pending"), ("mission.state", "", "running")]


async def test_success(engine: Engine, calculator_repo: Path) -> None:
    await engine.start(scripted())
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert m.tasks() == [(t, "complete", "", False) for t in ("t1", "t2", "t3", "t4")]
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        *_run("t2"),
        *_run("t3"),
        *_run("t4"),
        ("mission.state", "", "complete"),
    ]
    assert {"calculator/arithmetic.py", "tests/test_arithmetic.py"} <= set(r.changed_files)
    assert r.branch == f"coditect/{r.mission_id}" and r.commit
    assert r.tests.failed == 0 and r.tests.passed >= 7
    assert m.calls() == [
        ("plan", "planner", "plan", False),
        ("t2", "coder", "code", False),
        ("t3", "coder", "tests", False),
    ]
    assert r.tokens.input == sum(e.input_tokens for e in m.ledger) > 0
    assert r.tokens.output == sum(e.output_tokens for e in m.ledger) > 0


async def test_a_removal_takes_its_export_and_its_tests_with_it(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    await engine.start(scripted(code="```python\ndel subtract\n```"))
    m = await engine.run(calculator_repo, "Remove the `subtract` function: it is no longer used")
    r = m.report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert set(r.changed_files) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",
        "tests/test_arithmetic.py",
    }
    assert [c[2] for c in m.calls()] == ["code"]  # planned from the index; no test is written
    assert (
        "removed from tests/test_arithmetic.py with the code they tested: test_subtract, subtract"
        in " ".join(r.evidence)
    )
    for path in r.changed_files:
        assert "subtract" not in git(calculator_repo, "show", f"{r.branch}:{path}")


async def test_failing_tests_get_a_repair_round(engine: Engine, calculator_repo: Path) -> None:
    wrong = FIBONACCI_CODE.replace("return a\n", "return a + 1\n")
    await engine.start(scripted(code=[wrong]))
    m = await engine.run(calculator_repo)
    assert m.report.status is MissionOutcome.SUCCESS, m.report.reason
    assert m.tasks() == [
        ("t1", "complete", "", False),
        ("t2", "complete", "", False),
        ("t3", "complete", "", False),
        ("t4", "failed", "retest1", False),
        ("repair1", "complete", "", False),
        ("retest1", "complete", "", False),
    ]
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        *_run("t2"),
        *_run("t3"),
        *_run("t4", "failed"),
        *_run("repair1"),
        *_run("retest1"),
        ("mission.state", "", "complete"),
    ]
    assert [c[0] for c in m.calls()] == ["plan", "t2", "t3", "repair1"]


async def test_a_test_failing_before_the_change_is_not_blamed_on_it(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    # The project's own suite, recorded before any edit (in one process before the plan, in the
    # distributed mode by the worker of the first task), excuses a test that was failing already.
    (calculator_repo / "tests" / "test_known_bug.py").write_text(
        "import calculator\n\n\ndef test_known_bug():\n    assert calculator is None\n"
    )
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "a known failing test")
    await engine.start(scripted(), max_repairs=0)
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert m.tasks() == [(t, "complete", "", False) for t in ("t1", "t2", "t3", "t4")]
    assert "tests/test_known_bug.py" not in r.changed_files
    assert not any(f.startswith(".coditect/") for f in r.changed_files)


async def test_the_report_says_which_dependencies_were_installed_for_the_tests(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    # One process installs them before planning, a worker into its clone: the same note.
    pyproject = calculator_repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'requires-python = ">=3.11"\n',
            'requires-python = ">=3.11"\ndependencies = ["six>=1.10"]\n',
        )
    )
    git(calculator_repo, "commit", "-qam", "a dependency this interpreter lacks")
    await engine.start(scripted())
    r = (await engine.run(calculator_repo)).report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    wanted = "the project's dependencies missing here were installed for its tests: six>=1.10"
    assert r.notes.count(wanted) == 1, r.notes


async def test_a_generated_module_git_ignores_is_there_for_the_tests(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    # A version module written at install time (setuptools-scm, hatch-vcs) is in the checkout,
    # not in the commits; the package imports it. A worker's clone has only the commits.
    init = calculator_repo / "calculator" / "__init__.py"
    init.write_text(init.read_text() + "from calculator._version import __version__\n")
    (calculator_repo / ".gitignore").write_text("calculator/_version.py\n")
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "version from the build")
    (calculator_repo / "calculator" / "_version.py").write_text("__version__ = '1.0'\n")
    await engine.start(scripted(), max_repairs=0)
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert r.tests.passed > 0 and r.tests.errors == 0, r.tests
    assert "calculator/_version.py" not in r.changed_files
    wanted = (
        "1 Python file(s) that git ignores were copied from the project as they are (generated "
        "modules its code imports, such as a version file): calculator/_version.py"
    )
    assert r.notes.count(wanted) == 1, r.notes


async def test_a_package_that_reads_its_own_version_is_tested_without_being_installed(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    # Its metadata is written into the copy (one process) or clone (a worker) the tests run in.
    init = calculator_repo / "calculator" / "__init__.py"
    version = (
        'import importlib.metadata\n\n__version__ = importlib.metadata.version("calculator")\n'
    )
    init.write_text(version + init.read_text())
    git(calculator_repo, "commit", "-qam", "the version from the metadata")
    await engine.start(scripted(), max_repairs=0)
    r = (await engine.run(calculator_repo)).report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert r.tests.passed > 0 and r.tests.errors == 0, r.tests
    assert not any(f.startswith(".coditect/") for f in r.changed_files)


async def test_tests_go_beside_a_test_module_that_could_not_be_imported(
    engine: Engine, calculator_repo: Path, git: Callable[..., str]
) -> None:
    # The project's tests of the module import a test dependency this machine lacks: tests
    # written into that file would never run, so they go into a new file beside it.
    old = calculator_repo / "tests" / "test_arithmetic.py"
    old.write_text("import not_installed_here_xyz\n" + old.read_text())
    git(calculator_repo, "commit", "-qam", "a test dependency")
    await engine.start(scripted(), max_repairs=0)
    r = (await engine.run(calculator_repo)).report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert "tests/test_arithmetic_2.py" in r.changed_files, r.changed_files
    assert "tests/test_arithmetic.py" not in r.changed_files
    assert r.tests.written_by_coditect == ["tests/test_arithmetic_2.py"]


async def test_a_failed_task_blocks_its_dependents(engine: Engine, calculator_repo: Path) -> None:
    await engine.start(scripted(code="```python\ndef fibonacci(n:\n```"))
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.FAILED
    statuses = {t.id: t.status.value for t in r.tasks}
    assert statuses["t1"] == "complete" and statuses["t2"] == "failed"
    assert statuses["t3"] == statuses["t4"] == "blocked"
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        *_run("t2", "failed"),
        ("mission.state", "", "failed"),
    ]
    assert r.changed_files == [] and r.commit == ""


async def test_a_budget_stop_ends_the_mission(engine: Engine, calculator_repo: Path) -> None:
    # The code call uses a million tokens: the next call (the tests) no longer fits.
    await engine.start(scripted(code=_expensive_code), budget_tokens=50_000)
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.FAILED
    assert r.reason.startswith("token budget exceeded"), r.reason
    assert "0 of 50000 left" in r.reason, r.reason
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        *_run("t2"),
        *_run("t3", "failed"),
        ("mission.state", "", "failed"),
    ]
    assert [c[0] for c in m.calls()] == ["plan", "t2"]
    assert r.tokens.input >= 900_000


async def test_cancel_stops_the_running_task(engine: Engine, calculator_repo: Path) -> None:
    await engine.start(scripted(code=_hang))
    mid = await engine.submit(calculator_repo)
    await engine.running(mid, "t2")
    await engine.cancel(mid)
    m = await engine.finish(mid)
    r = m.report
    assert r.status is MissionOutcome.CANCELLED
    assert r.reason == "cancelled by the user; nothing was changed"
    statuses = {t.id: t.status.value for t in r.tasks}
    assert statuses["t1"] == "complete" and statuses["t2"] == "cancelled"
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        ("task.state", "t2", "running"),
        ("mission.state", "", "cancelled"),
    ]
    assert r.commit == ""


async def test_the_mission_timeout_fails_the_running_task(
    engine: Engine, calculator_repo: Path
) -> None:
    await engine.start(scripted(code=_hang), mission_timeout_s=4.0)
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.FAILED
    assert r.reason == "mission timed out after 4s in task t2"
    assert m.lifecycle() == [
        *_START,
        *_run("t1"),
        *_run("t2", "failed"),
        ("mission.state", "", "failed"),
    ]


def _slow_refusal_then_hang(seconds: float) -> Any:
    """A first answer with no code after ``seconds``, then answers that never come."""
    calls: list[int] = []

    async def answer(messages: Any, settings: ModelSettings) -> str:
        calls.append(1)
        if len(calls) > 1:
            return await _hang(messages, settings)
        await asyncio.sleep(seconds)
        return "I would rather not write this."

    return answer


async def test_a_task_does_not_start_an_answer_the_mission_has_no_time_for(
    engine: Engine, calculator_repo: Path
) -> None:
    # The first answer took 5 s and the mission has less than that left: the coder does not
    # ask again (that answer would never come before the mission's limit), and the report
    # says why the task failed instead of only that the mission ran out of time.
    await engine.start(scripted(code=_slow_refusal_then_hang(5.0)), mission_timeout_s=9.0)
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.FAILED
    assert "no time for generation 2: " in r.reason, r.reason
    assert "timed out" not in r.reason, r.reason


def _first_then_hang(first: str) -> Any:
    """An answer that is ``first`` on the first call of a model instance, then never comes."""
    calls: list[int] = []

    async def answer(messages: Any, settings: ModelSettings) -> str:
        calls.append(1)
        return first if len(calls) == 1 else await _hang(messages, settings)

    return answer


async def test_a_timeout_in_a_repair_round_keeps_the_tested_change(
    engine: Engine, calculator_repo: Path
) -> None:
    # The first code disagrees with the tests CODITECT wrote; the repair round never answers.
    # The change is exactly the one the last test run judged: UNVERIFIED, committed, not lost.
    wrong = FIBONACCI_CODE.replace("return a\n", "return a + 1\n")
    await engine.start(
        scripted(code=_first_then_hang(wrong), tests=_first_then_hang(FIBONACCI_TESTS)),
        mission_timeout_s=25.0,
    )
    m = await engine.run(calculator_repo)
    r = m.report
    assert r.status is MissionOutcome.UNVERIFIED, r.reason
    assert r.reason.startswith("mission timed out after 25s in task repair"), r.reason
    assert "tests written by CODITECT disagree" in r.reason, r.reason
    assert "calculator/arithmetic.py" in r.changed_files
    assert r.branch == f"coditect/{r.mission_id}" and r.commit
    assert "return a + 1" in r.diff


async def test_a_second_identical_mission_reuses_the_work(
    engine: Engine, calculator_repo: Path
) -> None:
    await engine.start(scripted())
    first = await engine.run(calculator_repo)
    assert first.report.status is MissionOutcome.SUCCESS, first.report.reason
    second = await engine.run(calculator_repo)
    r = second.report
    assert r.status is MissionOutcome.SUCCESS, r.reason
    assert r.plan_source == "reused"
    assert second.tasks() == [
        ("t1", "complete", "", True),
        ("t2", "complete", "", True),
        ("t3", "complete", "", True),
        ("t4", "complete", "", False),  # tests always run
    ]
    assert second.calls() == []
    assert r.tokens.saved > 0 and r.tokens.input == 0
    assert second.lifecycle() == first.lifecycle()
    assert r.diff == first.report.diff
