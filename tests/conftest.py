"""Suite-wide fixtures: every test gets its own CODITECT home, and no test reaches a paid LLM.

``sandbox`` runs a test once on every sandbox backend available on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import coditect.api  # noqa: F401  (turns gRPC fork support off before any channel exists)
from coditect.llm.guard import override_allow_model_requests
from coditect.sandbox.base import Sandbox
from coditect.sandbox.policy import SANDBOX_BACKENDS

# Session fixtures nats_url, redis_url, redis_cluster_nodes: servers of our own on free ports.
pytest_plugins = ["infra.servers", "infra.pg", "infra.s3", "infra.otel"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calculator"

_sandboxes: dict[str, Sandbox] = {}


@pytest.fixture(params=sorted(SANDBOX_BACKENDS))
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each registered backend in turn (one instance per process); skipped where unavailable."""
    name = request.param
    spec = SANDBOX_BACKENDS[name]
    if not spec.available():
        pytest.skip(f"{name} sandbox unavailable here: {spec.install_hint}")
    if name not in _sandboxes:
        _sandboxes[name] = spec.factory()
    return _sandboxes[name]


@pytest.fixture(autouse=True)
def _no_paid_llm():
    """No test reaches a paid LLM API unless it opts in explicitly."""
    with override_allow_model_requests(False):
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("coditect-home")
    monkeypatch.setenv("CODITECT_HOME", str(home))
    return home


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def calculator_repo(tmp_path) -> Path:
    """A fresh git repository holding a copy of examples/calculator, one commit on main."""
    repo = tmp_path / "calculator"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "initial")
    return repo


@pytest.fixture
def git():
    """Run git in a directory and return its output."""
    return _git
