"""The Sandbox contract: the same tests on every backend registered in coditect.sandbox.policy.

A backend that cannot run here (no wasmtime, no bubblewrap, no Docker engine) is skipped.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from coditect.errors import SandboxError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest


def _req(workdir: Path, *argv: str, **limits: float) -> SandboxRequest:
    return SandboxRequest(
        argv=argv, workdir=workdir, limits=SandboxLimits(**{"wall_timeout_s": 60, **limits})
    )


async def test_exit_code_and_output(sandbox: Sandbox, tmp_path: Path) -> None:
    code = "import sys; print('hello'); print('oops', file=sys.stderr); sys.exit(3)"
    result = await sandbox.run(_req(tmp_path, "python", "-c", code))
    assert result.exit_code == 3
    assert "hello" in result.stdout
    assert "oops" in result.stderr
    assert not result.timed_out
    assert result.killed_by == ""
    assert result.backend == sandbox.name


async def test_success_is_zero(sandbox: Sandbox, tmp_path: Path) -> None:
    result = await sandbox.run(_req(tmp_path, "python", "-c", "pass"))
    assert result.exit_code == 0


async def test_writes_inside_workdir_are_visible(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("41")
    code = (
        "import os; n = int(open('input.txt').read()); os.makedirs('out', exist_ok=True);"
        " open('out/result.txt', 'w').write(str(n + 1))"
    )
    result = await sandbox.run(_req(tmp_path, "python", "-c", code))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "result.txt").read_text() == "42"


async def test_clean_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_CONTRACT_SECRET", "sk-contract-secret")
    code = (
        "import os; print(os.environ.get('CODITECT_CONTRACT_SECRET', 'absent'));"
        " print(os.environ.get('GIVEN', 'missing'))"
    )
    request = SandboxRequest(
        argv=("python", "-c", code),
        workdir=tmp_path,
        env={"GIVEN": "yes"},
        limits=SandboxLimits(wall_timeout_s=60),
    )
    result = await sandbox.run(request)
    assert result.exit_code == 0, result.stderr
    assert "sk-contract-secret" not in result.stdout
    assert result.stdout.split() == ["absent", "yes"]


async def test_coverage_data_stays_out_of_the_project(sandbox: Sandbox, tmp_path: Path) -> None:
    # A project whose pytest options say --cov must not change a file of its own by running
    # its tests: the data file goes to .coditect/, which is never committed nor a change.
    code = "import os; print(os.path.abspath(os.environ['COVERAGE_FILE']))"
    result = await sandbox.run(_req(tmp_path, "python", "-c", code))
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()).parent.name == ".coditect"


async def test_set_order_is_the_same_in_every_run(sandbox: Sandbox, tmp_path: Path) -> None:
    # Test ids of a suite parametrized from a set follow the set's order: the run before a
    # change and the run after it must name the same tests.
    code = "print(list({'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta'}))"
    orders = {(await sandbox.run(_req(tmp_path, "python", "-c", code))).stdout for _ in range(3)}
    assert len(orders) == 1, orders


async def test_stdin_is_fed(sandbox: Sandbox, tmp_path: Path) -> None:
    request = SandboxRequest(
        argv=("python", "-c", "import sys; print(sys.stdin.read().upper())"),
        workdir=tmp_path,
        stdin=b"ping",
        limits=SandboxLimits(wall_timeout_s=60),
    )
    result = await sandbox.run(request)
    assert result.exit_code == 0, result.stderr
    assert "PING" in result.stdout


async def test_wall_timeout_kills(sandbox: Sandbox, tmp_path: Path) -> None:
    code = "import time; print('started', flush=True); time.sleep(30)"
    result = await sandbox.run(_req(tmp_path, "python", "-c", code, wall_timeout_s=1))
    assert result.timed_out
    assert result.killed_by == "timeout"
    assert result.exit_code != 0


async def test_cpu_limit_kills(sandbox: Sandbox, tmp_path: Path) -> None:
    result = await sandbox.run(_req(tmp_path, "python", "-c", "while True: pass", cpu_s=1))
    assert result.killed_by == "cpu"
    assert not result.timed_out
    assert result.exit_code != 0


async def test_output_is_capped(sandbox: Sandbox, tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 300000); sys.stdout.flush()"
    result = await sandbox.run(_req(tmp_path, "python", "-c", code, max_output_bytes=1000))
    assert result.exit_code == 0, result.stderr
    assert 0 < len(result.stdout.encode()) <= 1000 + 200  # room for a truncation notice


async def test_missing_workdir_is_an_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        await sandbox.run(_req(tmp_path / "nowhere", "python", "-c", "pass"))


async def test_file_as_workdir_is_an_error(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SandboxError):
        await sandbox.run(_req(tmp_path / "file", "python", "-c", "pass"))


_TESTS = textwrap.dedent(
    """
    from calc import add

    def test_add():
        assert add(2, 3) == 5

    def test_add_negative():
        assert add(-1, 1) == {expected}
    """
)


def _project(root: Path, expected: int) -> Path:
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(_TESTS.format(expected=expected))
    return root


_PYTEST = (
    "python",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "--junitxml=.coditect/junit.xml",
    "tests",
)


async def test_pytest_writes_junit_xml(sandbox: Sandbox, tmp_path: Path) -> None:
    project = _project(tmp_path, expected=0)
    result = await sandbox.run(_req(project, *_PYTEST))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    suite = ET.parse(project / ".coditect" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "0"


async def test_pytest_failure_is_exit_code_one(sandbox: Sandbox, tmp_path: Path) -> None:
    project = _project(tmp_path, expected=1)
    result = await sandbox.run(_req(project, *_PYTEST))
    assert result.exit_code == 1
    assert result.killed_by == ""
    suite = ET.parse(project / ".coditect" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "1"


async def test_file_size_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    code = (
        "try:\n"
        "    with open('big.bin', 'wb') as f:\n"
        "        f.write(b'x' * (4 * 1024 * 1024))\n"
        "    print('wrote')\n"
        "except OSError:\n"
        "    print('blocked')\n"
    )
    request = SandboxRequest(
        argv=("python", "-c", code),
        workdir=tmp_path,
        limits=SandboxLimits(wall_timeout_s=60, max_file_bytes=1024 * 1024),
    )
    await sandbox.run(request)
    big = tmp_path / "big.bin"
    assert not big.exists() or big.stat().st_size <= 1024 * 1024


async def test_concurrent_runs_are_independent(sandbox: Sandbox, tmp_path: Path) -> None:
    import asyncio

    dirs = [tmp_path / f"p{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        d.mkdir()
        (d / "n.txt").write_text(str(i))
    code = "n = open('n.txt').read(); open('out.txt', 'w').write(n * 2); print(n)"
    results = await asyncio.gather(*(sandbox.run(_req(d, "python", "-c", code)) for d in dirs))
    assert [r.stdout.strip() for r in results] == ["0", "1", "2"]
    assert [(d / "out.txt").read_text() for d in dirs] == ["00", "11", "22"]
