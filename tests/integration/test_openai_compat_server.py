"""OpenAICompatModel against a real OpenAI-compatible server: llama-cpp-python's, on a free port.

The server (``python -m llama_cpp.server``) serves the embedded Qwen2.5-Coder-1.5B model. It needs
``pip install 'llama-cpp-python[server]'``; the tests skip only when that is not importable.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coditect.llm.base import Message, ModelSettings
from coditect.llm.guard import override_allow_model_requests
from coditect.llm.ledger import CallContext, LedgerModel, MemoryLedger
from coditect.llm.openai_compat import OpenAICompatModel, Provider
from coditect.llm.retry import RetryPolicy

pytestmark = pytest.mark.local_model

MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
if any(importlib.util.find_spec(name) is None for name in MODULES):
    pytest.skip(
        "llama_cpp.server is not importable: pip install 'llama-cpp-python[server]'",
        allow_module_level=True,
    )

STARTUP_TIMEOUT_S = 120.0
ALIAS = "qwen2.5-coder-1.5b"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server not ready in {STARTUP_TIMEOUT_S:g} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from coditect.llm.model_file import ensure_model_file

    model_path = ensure_model_file()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "1024",
        "--n_threads",
        "2",
        "--verbose",
        "False",
    ]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(base_url, proc, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
async def model(server_url: str) -> AsyncIterator[OpenAICompatModel]:
    m = OpenAICompatModel(
        ALIAS,
        provider=Provider.llama_cpp(server_url),
        retry=RetryPolicy(max_attempts=2, timeout_s=120),
    )
    with override_allow_model_requests(True):
        yield m
    await m.aclose()


async def test_answers_with_the_servers_own_usage(model: OpenAICompatModel) -> None:
    response = await model.request(
        [
            Message(role="system", content="You are a terse assistant."),
            Message(role="user", content="Reply with one word: hello"),
        ],
        ModelSettings(max_tokens=8),
    )
    assert response.text.strip()
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 8
    assert response.finish_reason in {"stop", "length"}
    assert response.model_name == f"openai:{ALIAS}@{model.provider.base_url}"


async def test_max_tokens_and_stop_are_honoured(model: OpenAICompatModel) -> None:
    ask = [Message(role="user", content="Count from 1 to 20, separated by commas.")]
    capped = await model.request(ask, ModelSettings(max_tokens=3))
    assert capped.usage.output_tokens <= 3
    assert capped.finish_reason == "length"

    stopped = await model.request(ask, ModelSettings(max_tokens=40, stop=("5",)))
    assert "5" not in stopped.text
    assert "4" in stopped.text
    assert stopped.finish_reason == "stop"


async def test_ledger_records_a_free_self_hosted_call(model: OpenAICompatModel) -> None:
    ledger = MemoryLedger()
    wrapped = LedgerModel(model, ledger, context=CallContext(mission_id="m", agent="coder"))
    response = await wrapped.request(
        [Message(role="user", content="Say ok.")], ModelSettings(max_tokens=4, purpose="code")
    )
    (entry,) = await ledger.entries("m")
    assert entry.input_tokens == response.usage.input_tokens > 0
    assert entry.output_tokens == response.usage.output_tokens > 0
    assert entry.usd == 0.0 and entry.priced


async def test_json_schema_in_llama_cpp_python_style(server_url: str) -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "arity": {"type": "integer"}},
        "required": ["name", "arity"],
    }
    m = OpenAICompatModel(
        ALIAS, provider=Provider.llama_cpp(server_url), json_schema_style="json_object"
    )
    try:
        with override_allow_model_requests(True):
            response = await m.request(
                [Message(role="user", content="Name a Python builtin function and its arity.")],
                ModelSettings(max_tokens=40, json_schema=schema),
            )
    finally:
        await m.aclose()
    value = json.loads(response.text)
    assert isinstance(value["name"], str)
    assert isinstance(value["arity"], int)
