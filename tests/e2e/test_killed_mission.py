"""``kill -9`` of ``coditect run``: the mission shows INTERRUPTED, nothing of it keeps running,
``coditect gc`` removes its folders and ``coditect resume`` finishes it (real processes, real
signals, both isolating sandboxes)."""

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

    The first sandboxed run is the baseline of the whole suite (before planning), which holds
    the hanging test; later runs select the tests related to the change and may not.
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

    # Resume: the hanging test is fixed in the repository; the mission finishes under its id.
    git(calculator_repo, "rm", "-q", "tests/test_hang.py")
    git(calculator_repo, "commit", "-qm", "drop the hanging test")
    resumed = runner.invoke(
        app,
        ["resume", mission_id[:12], "--llm", "scripted:fibonacci", "--sandbox", backend, "--json"],
    )
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert (report["mission_id"], report["status"]) == (mission_id, "SUCCESS")
    assert report["plan_source"] == "resumed"
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
