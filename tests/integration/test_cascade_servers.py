"""The verified cascade against two real OpenAI-compatible servers (llama-cpp-python's).

Tier 0 is a server whose context window (96 tokens) is too small for any agent prompt, so every
answer it could give is unusable (the server refuses with 400); tier 1 is the same model with a
normal window. A mission run through ``--llm`` syntax must escalate to tier 1, and the ledger and
``coditect costs`` must say which tier answered what.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect.cli.costs_cmd import costs_summary
from coditect.config import Settings
from coditect.llm.cascade import CascadeModel
from coditect.llm.guard import override_allow_model_requests
from coditect.llm.registry import model_from_spec
from coditect.runtime import build_runtime

pytestmark = [pytest.mark.local_model, pytest.mark.slow, pytest.mark.timeout(1800)]

MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
if any(importlib.util.find_spec(name) is None for name in MODULES):
    pytest.skip(
        "llama_cpp.server is not importable: pip install 'llama-cpp-python[server]'",
        allow_module_level=True,
    )

ALIAS = "qwen2.5-coder-1.5b"
STUB = '''def add(a, b):
    """Return the sum of a and b."""
    raise NotImplementedError
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(model: Path, n_ctx: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2",
        "--verbose", "False",
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"llama_cpp.server not ready:\n{log.read_text()}")


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from coditect.llm.model_file import ensure_model_file

    model = ensure_model_file()
    logs = tmp_path_factory.mktemp("servers")
    procs = []
    try:
        tiny, tiny_url = _serve(model, 96, logs / "tiny.log")
        procs.append(tiny)
        normal, normal_url = _serve(model, 4096, logs / "normal.log")
        procs.append(normal)
        yield tiny_url, normal_url
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    (path / "mathutil.py").write_text(STUB)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run([*git, *args], cwd=path, check=True, capture_output=True)
    return path


async def test_unusable_tier0_answers_escalate_to_the_second_server(
    two_servers: tuple[str, str], repo: Path
) -> None:
    tiny_url, normal_url = two_servers
    spec = f"llama-cpp-python:{ALIAS}@{tiny_url},escalate=llama-cpp-python:{ALIAS}@{normal_url}"
    model = model_from_spec(spec, env={**os.environ, "CODITECT_LLM_TIMEOUT_S": "900"})
    assert isinstance(model, CascadeModel)
    rt = build_runtime(Settings(sandbox="subprocess", task_timeout_s=1500), model=model)
    try:
        with override_allow_model_requests(True):
            report = await rt.runner.run("Implement add in mathutil.py", repo)
        assert rt.ledger is not None
        entries = await rt.ledger.entries(report.mission_id)
    finally:
        await rt.aclose()
    costs = costs_summary(report, entries)
    print(json.dumps({k: costs[k] for k in ("status", "tasks", "tiers", "escalation")}, indent=1))
    # every recorded call was answered by tier 1 (tier 0 refused each prompt as too long)
    assert entries and {e.tier for e in entries} == {1}
    assert costs["tiers"]["1"]["models"] == [f"openai:{ALIAS}@{normal_url}"]
    assert costs["escalation"]["calls"] == len(entries)
    assert costs["escalation"]["tasks"]
    assert costs["escalation"]["usd"] == 0.0  # both tiers are self-hosted: free
