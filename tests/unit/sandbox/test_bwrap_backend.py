"""The bubblewrap (``process``) backend: what the contract suite does not cover.

The shared contract lives in tests/contracts/test_sandbox_contract.py and the attacks in
tests/security/; these tests pin the backend's own promises: the Tester's pytest command, the
privilege drop, file ownership afterwards, process-tree cleanup, and its error when bwrap is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from coditect.errors import SandboxError, SandboxUnavailableError
from coditect.sandbox.base import SandboxLimits, SandboxRequest
from coditect.sandbox.bwrap import BubblewrapSandbox
from coditect.sandbox.uids import configured_uids

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calculator"
TESTER_ARGV = (
    "python",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "--junitxml=.coditect/junit.xml",
    "tests",
)
# How the sandboxed interpreter shows in /proc/<pid>/cmdline on the host.
_SANDBOX_PYTHON = (
    b"/opt/coditect/venv/bin/python" if sys.prefix != sys.base_prefix else sys.executable.encode()
)

pytestmark = pytest.mark.skipif(
    not BubblewrapSandbox.available(), reason="bubblewrap unavailable: apt-get install bubblewrap"
)


def _request(workdir: Path, *argv: str, **limits: float) -> SandboxRequest:
    return SandboxRequest(
        argv=argv, workdir=workdir, limits=SandboxLimits(**{"wall_timeout_s": 60, **limits})
    )


def _pids_with(marker: str, prefix: bytes = b"") -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if marker.encode() in cmdline and cmdline.startswith(prefix):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _none_left(marker: str, within_s: float = 10.0) -> list[int]:
    """The processes still running with ``marker`` once they had ``within_s`` to die.

    A SIGKILL is delivered asynchronously, later on a busy machine: checking the instant after
    the kill would fail a sandbox that did kill everything.
    """
    deadline = time.monotonic() + within_s
    while (pids := _pids_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "calc", ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return tmp_path / "calc"


async def test_tester_command_runs_pytest_and_leaves_usable_files(project: Path) -> None:
    result = await BubblewrapSandbox().run(_request(project, *TESTER_ARGV))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.backend == "process"
    junit = project / ".coditect" / "junit.xml"
    assert "<testsuite" in junit.read_text()
    owner = (os.getuid(), os.getgid())
    for path in (project, junit, junit.parent, *project.rglob("*")):
        assert (path.lstat().st_uid, path.lstat().st_gid) == owner, path


async def test_sees_project_at_work_and_runs_unprivileged(project: Path) -> None:
    code = "import os; print(os.getcwd(), os.getuid(), sorted(os.listdir('.'))[:3])"
    result = await BubblewrapSandbox().run(_request(project, "python", "-c", code))
    cwd, uid, *_ = result.stdout.split()
    assert (cwd, uid) == ("/work", "65534")


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop only happens as root")
async def test_as_root_the_sandbox_runs_under_an_unprivileged_host_uid(project: Path) -> None:
    marker = f"uidcheck-{uuid.uuid4().hex}"
    sandbox = BubblewrapSandbox()
    task = asyncio.create_task(
        sandbox.run(_request(project, "python", "-c", f"import time; time.sleep(5)  # {marker}"))
    )
    for _ in range(200):
        # The sandboxed interpreter itself, not the launcher (root until it drops, just before bwrap).
        pids = _pids_with(marker, prefix=_SANDBOX_PYTHON)
        if pids:
            break
        await asyncio.sleep(0.05)
    status = (Path("/proc") / str(pids[0]) / "status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    (host_uid,) = set(uid_line.split()[1:])
    assert int(host_uid) in configured_uids()  # one leased uid, never root
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _none_left(marker) == []


async def test_timeout_kills_background_children_too(project: Path) -> None:
    marker = f"bg-{uuid.uuid4().hex}"
    script = f"setsid sleep 100 {marker} & nohup sleep 100 {marker} & sleep 100"
    result = await BubblewrapSandbox().run(_request(project, "sh", "-c", script, wall_timeout_s=1))
    assert result.timed_out
    assert _none_left(marker) == []


async def test_concurrent_runs_share_the_project(project: Path) -> None:
    sandbox = BubblewrapSandbox()
    runs = [
        sandbox.run(_request(project, "python", "-c", f"open('out{i}.txt', 'w').write('{i}')"))
        for i in range(3)
    ]
    results = await asyncio.gather(*runs)
    assert [r.exit_code for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert {p.read_text() for p in project.glob("out*.txt")} == {"0", "1", "2"}
    assert {p.stat().st_uid for p in project.glob("out*.txt")} == {os.getuid()}


async def test_missing_bwrap_is_unavailable_with_the_install_hint(project: Path) -> None:
    sandbox = BubblewrapSandbox(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailableError) as caught:
        await sandbox.run(_request(project, "python", "-c", "pass"))
    assert "apt-get install bubblewrap" in caught.value.hint


async def test_refuses_a_top_level_directory() -> None:
    with pytest.raises(SandboxError):
        await BubblewrapSandbox().run(_request(Path("/usr"), "true"))


async def test_unknown_program_is_a_failed_command_not_a_sandbox_error(project: Path) -> None:
    result = await BubblewrapSandbox().run(_request(project, "no-such-program-xyz"))
    assert result.exit_code != 0
    assert "no-such-program-xyz" in result.stderr


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="`python` on PATH comes with a venv")
async def test_python_on_path_is_the_sandbox_interpreter(project: Path) -> None:
    script = "python -c 'import sys, pytest; print(sys.prefix == sys.base_prefix)'"
    result = await BubblewrapSandbox().run(_request(project, "sh", "-c", script))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "False"  # the venv, not its base installation


async def test_only_project_and_small_tmpfs_are_writable(project: Path) -> None:
    # bwrap's own / and /dev are RAM-backed tmpfs: writable, they would let a command fill memory.
    script = (
        "for p in /x /dev/x /usr/x /opt/x; do touch $p 2>/dev/null && echo WROTE $p; done;"
        " touch /tmp/ok /dev/shm/ok /work/ok && echo SMALL-OK;"
        " dd if=/dev/zero of=/dev/shm/big bs=1M count=64 2>/dev/null; du -m /dev/shm/big"
    )
    result = await BubblewrapSandbox().run(_request(project, "sh", "-c", script))
    assert "WROTE" not in result.stdout
    assert "SMALL-OK" in result.stdout
    assert int(result.stdout.split()[-2]) <= 16


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership is only lent when running as root")
async def test_a_tree_left_lent_by_a_killed_run_goes_back_to_the_parents_owner(
    project: Path,
) -> None:
    for path in (project, *project.rglob("*")):
        os.lchown(path, 65534, 65534)  # what a SIGKILLed CODITECT leaves behind
    result = await BubblewrapSandbox().run(_request(project, "python", "-c", "pass"))
    assert result.exit_code == 0, result.stderr
    parent = project.parent.stat()
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in (project, *project.rglob("*"))}
    assert owners == {(parent.st_uid, parent.st_gid)}
