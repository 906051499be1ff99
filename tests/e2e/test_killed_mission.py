"""``kill -9`` of ``coditect run``: the mission shows INTERRUPTED, nothing of it keeps running,
``coditect gc`` removes its folders and ``coditect resume`` finishes it, continuing after the
tasks that had completed (real processes, real signals)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coditect.cli.main import app
from coditect.config import Settings
from coditect.leftovers import ProcessIdentity
from coditect.sandbox.policy import SANDBOX_BACKENDS
from coditect.state.sql import SqlStore

REQUEST = "Add a function to calculate the nth Fibonacci number"
HANG = "import time\n\n\ndef test_hangs():\n    time.sleep(600)\n"
runner = CliRunner()

pytestmark = pytest.mark.slow


@pytest.fixture
def tmpdir_for_coditect(monkeypatch) -> Iterator[Path]:
    """A temporary directory of its own (world-traversable: the sandbox uid stages from it)."""
    path = Path(tempfile.mkdtemp(prefix="h12-tmp-", dir="/tmp"))
    path.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


async def wait_for_test_run(mission_dir_db: str, proc: subprocess.Popen[bytes]) -> str:
    """The mission id once it is stored and runs the project's tests in a sandbox.

    A mission is stored (RUNNING, with its owner) before anything else; its first sandboxed
    run is the baseline of the whole suite (before planning), which holds the hanging test.
    """
    store = SqlStore(mission_dir_db)
    try:
        for _ in range(1200):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            reports = await store.list_reports(5)
            if reports and descendants(proc.pid):
                return reports[0].mission_id
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    raise AssertionError("the mission never reached its test run")


@pytest.mark.parametrize("backend", ["process", "wasm"])
def test_killed_mission_is_interrupted_cleaned_up_and_resumed(
    backend, calculator_repo, git, tmpdir_for_coditect
):
    if not SANDBOX_BACKENDS[backend].available():
        pytest.skip(f"the {backend} sandbox is unavailable here")
    (calculator_repo / "tests" / "test_hang.py").write_text(HANG)
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "a test that hangs")
    env = {**os.environ, "CODITECT_TEST_TIMEOUT_S": "600"}
    args = ["run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coditect", *args, "--sandbox", backend],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        mission_id = asyncio.run(wait_for_test_run(Settings().database_url, proc))
        time.sleep(1.0)  # let the sandbox enter the hanging test
        helpers = descendants(proc.pid)
        assert helpers, "the test run should have started helper processes"
        identities = [ProcessIdentity("", "", pid, 0) for pid in helpers]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()

    # Nothing the killed process started keeps running (spawn helper, bwrap, wasm worker).
    for _ in range(100):
        alive = [i.pid for i in identities if Path(f"/proc/{i.pid}").exists()]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes() for p in alive]

    status = runner.invoke(app, ["status", "--json"])
    (row,) = [r for r in json.loads(status.stdout) if r["mission_id"] == mission_id]
    assert row["status"] == "INTERRUPTED"
    shown = runner.invoke(app, ["show", mission_id])
    assert "INTERRUPTED" in shown.stdout and f"coditect resume {mission_id}" in " ".join(
        shown.stdout.split()
    )

    left = [p.name for p in tmpdir_for_coditect.iterdir() if p.name.startswith("coditect-")]
    assert left, "the killed mission's workspace copy is expected to be left behind"
    cleaned = runner.invoke(app, ["gc", "--json"])
    assert cleaned.exit_code == 0, cleaned.output
    assert {Path(p).name for p in json.loads(cleaned.stdout)["removed"]} >= set(left)
    assert not [p for p in tmpdir_for_coditect.iterdir() if p.name.startswith("coditect-")]

    # It was killed before its first task ended: no checkpoint, so resume says so and does
    # nothing unless asked to run the plan again from the start.
    refused = runner.invoke(app, ["resume", mission_id[:12]])
    assert refused.exit_code == 2
    assert "no checkpoint of it was stored" in " ".join(refused.stdout.split())

    # Resume: the hanging test is fixed in the repository; the mission finishes under its id.
    git(calculator_repo, "rm", "-q", "tests/test_hang.py")
    git(calculator_repo, "commit", "-qm", "drop the hanging test")
    resumed = runner.invoke(
        app,
        [
            *("resume", mission_id[:12], "--from-start", "--llm", "scripted:fibonacci"),
            *("--sandbox", backend, "--json"),
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert (report["mission_id"], report["status"]) == (mission_id, "SUCCESS")
    # Killed in its baseline test run, before it had a plan: it is planned again.
    assert report["plan_source"] != "resumed"
    assert git(calculator_repo, "branch", "--list", f"coditect/{mission_id}").strip()

    again = runner.invoke(app, ["resume", mission_id])
    assert again.exit_code == 2
    assert "it ended SUCCESS, it was not interrupted" in " ".join(again.stdout.split())


def test_resume_refuses_unknown_and_running_missions(calculator_repo):
    unknown = runner.invoke(app, ["resume", "m-nope"])
    assert unknown.exit_code == 2 and "no mission" in unknown.stdout


def test_a_mission_of_a_live_process_stays_running(calculator_repo):
    from coditect.domain.mission import MissionReport

    store = SqlStore(Settings().database_url)
    report = MissionReport(mission_id="m-live", request="r", repo=str(calculator_repo))
    asyncio.run(store.save_report(report))
    asyncio.run(store.close())
    status = runner.invoke(app, ["status", "--json"])
    (row,) = json.loads(status.stdout)
    assert row["status"] == "RUNNING"  # its owner is this test process
    refused = runner.invoke(app, ["resume", "m-live"])
    assert refused.exit_code == 2 and "still running" in refused.stdout


# Blocks the test run that collects the new Fibonacci tests (not the baseline run, which has
# none) while the gate file exists; says so first. The subprocess sandbox sees the host's /tmp.
GATE_CONFTEST = """\
import pathlib
import time

GATE = pathlib.Path({gate!r})


def pytest_collection_modifyitems(items):
    if GATE.exists() and any("fibonacci" in item.name for item in items):
        GATE.with_suffix(".reached").write_text("reached")
        while GATE.exists():
            time.sleep(0.05)
"""


def stored(mission_id: str) -> tuple[list, dict[str, int]]:
    """The mission's events, and its ledger's model calls by task."""
    from sqlalchemy import create_engine, func, select

    from coditect.llm.ledger import llm_calls

    url = Settings().database_url
    store = SqlStore(url)
    try:
        events = asyncio.run(store.list_events(mission_id))
    finally:
        asyncio.run(store.close())
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                select(llm_calls.c.task, func.count())
                .where(llm_calls.c.mission == mission_id)
                .group_by(llm_calls.c.task)
            )
            calls = {task: n for task, n in conn.execute(query)}
    finally:
        engine.dispose()
    return events, calls


def runs_of(events: list, task_id: str) -> int:
    """How many times ``task_id`` was started (its RUNNING announcements)."""
    from coditect.domain import GoalState, TaskState

    return sum(
        1
        for e in events
        if isinstance(e, TaskState) and e.task_id == task_id and e.state is GoalState.RUNNING
    )


def test_killed_mission_resumes_after_its_completed_tasks(
    calculator_repo, git, tmpdir_for_coditect
):
    from coditect.domain import GoalState, TaskState

    gate = tmpdir_for_coditect / "gate"
    reached = gate.with_suffix(".reached")
    gate.write_text("closed")
    (calculator_repo / "tests" / "conftest.py").write_text(GATE_CONFTEST.format(gate=str(gate)))
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "a gate for the test run")
    env = {**os.environ, "CODITECT_TEST_TIMEOUT_S": "600"}
    args = ["run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coditect", *args, "--sandbox", "subprocess"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(1200):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if reached.exists():
                break
            time.sleep(0.1)
        assert reached.exists(), "the mission never reached the gated test run"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        gate.unlink(missing_ok=True)  # the blocked test run (if it outlived its parent) ends
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()

    store = SqlStore(Settings().database_url)
    try:
        (report,) = asyncio.run(store.list_reports(5))
        checkpoint = asyncio.run(store.get_checkpoint(report.mission_id))
    finally:
        asyncio.run(store.close())
    mission_id = report.mission_id
    assert checkpoint is not None and checkpoint.completed, "no task completed before the kill"
    events, calls = stored(mission_id)
    completed = [
        e.task_id for e in events if isinstance(e, TaskState) and e.state is GoalState.COMPLETE
    ]
    assert completed == checkpoint.completed
    assert any(calls.get(t) for t in completed), "a completed task should have called the model"

    # A repository that moved on is refused, with the reason; back at the base, it continues.
    git(calculator_repo, "commit", "-q", "--allow-empty", "-m", "moved on")
    moved = runner.invoke(app, ["resume", mission_id, "--llm", "scripted:fibonacci"])
    assert moved.exit_code == 2, moved.output
    assert "the repository moved on" in " ".join(moved.stdout.split())
    assert "--from-start" in moved.stdout
    git(calculator_repo, "reset", "-q", "--hard", "HEAD~1")

    resumed = runner.invoke(
        app,
        ["resume", mission_id, "--llm", "scripted:fibonacci", "--sandbox", "subprocess", "--json"],
    )
    assert resumed.exit_code == 0, resumed.output
    final = json.loads(resumed.stdout)
    assert (final["mission_id"], final["status"]) == (mission_id, "SUCCESS")

    after, calls_after = stored(mission_id)
    for task_id in completed:  # not run again: started once, no new model calls
        assert runs_of(after, task_id) == 1, task_id
        assert calls_after.get(task_id, 0) == calls.get(task_id, 0), task_id
    rest = [t.id for t in checkpoint.plan if t.id not in completed]
    assert rest and all(runs_of(after, t) >= 1 for t in rest)

    branch = f"coditect/{mission_id}"
    diff = git(calculator_repo, "diff", f"main..{branch}")
    assert diff.count("+def fibonacci(n):") == 1, diff
    module = git(calculator_repo, "show", f"{branch}:calculator/arithmetic.py")
    assert module.count("def fibonacci(n):") == 1
    store = SqlStore(Settings().database_url)
    try:  # the ended mission keeps no checkpoint
        assert asyncio.run(store.get_checkpoint(mission_id)) is None
    finally:
        asyncio.run(store.close())
