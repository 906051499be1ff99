"""The coditect_* metrics: endpoint, model and sandbox wrappers, lease latency, queue depth."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from coditect.errors import ConfigError
from coditect.llm.base import Message, ModelResponse, Usage
from coditect.llm.testing import ScriptedModel
from coditect.sandbox.base import Sandbox, SandboxRequest, SandboxResult
from coditect.sandbox.subprocess import SubprocessSandbox
from coditect.telemetry import metrics
from coditect.telemetry.wrappers import MeteredModel, MeteredSandbox, sandbox_outcome


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("bad", ["", "9464", "host:", "host:port", ":9464", "h:99999"])
def test_parse_listen_rejects_what_is_not_host_port(bad):
    with pytest.raises(ConfigError, match="invalid metrics address") as err:
        metrics.parse_listen(bad)
    assert "--metrics-listen" in err.value.hint


def test_parse_listen():
    assert metrics.parse_listen("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert metrics.parse_listen("[::1]:0") == ("::1", 0)


async def test_endpoint_serves_the_coditect_metrics():
    server = metrics.serve_metrics("127.0.0.1:0")
    try:
        assert server.port > 0 and server.url.endswith("/metrics")
        metrics.TASKS.labels(state="pending").inc()
        metrics.set_task_counts({"pending": 3, "running": 1})
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(server.url, timeout=10).read().decode()
        )
    finally:
        await server.close()
    assert 'coditect_task_state_changes_total{state="pending"}' in body
    assert 'coditect_tasks{state="pending"} 3.0' in body
    assert "# TYPE coditect_tasks gauge" in body
    for name in (
        "coditect_queue_depth",
        "coditect_lease_latency_seconds",
        "coditect_llm_tokens_total",
        "coditect_llm_cost_usd_total",
        "coditect_sandbox_runs_total",
        "coditect_consistency_violations_total",
        "coditect_missions_running",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name


async def test_a_busy_port_is_a_clear_error():
    server = metrics.serve_metrics("127.0.0.1:0")
    try:
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            metrics.serve_metrics(f"127.0.0.1:{server.port}")
    finally:
        await server.close()


async def test_metered_model_counts_tokens_and_cost():
    priced = ModelResponse(
        text="ok",
        usage=Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=0),
        model_name="claude-sonnet-4-5",
    )
    reused = priced.model_copy(update={"reused": True})
    model = MeteredModel(ScriptedModel([priced, reused]))
    before = {
        k: value("coditect_llm_tokens_total", model="claude-sonnet-4-5", kind=k)
        for k in ("input", "output")
    }
    cost0 = value("coditect_llm_cost_usd_total", model="claude-sonnet-4-5")
    calls0 = value("coditect_llm_requests_total", model="claude-sonnet-4-5")
    for _ in range(2):
        await model.request([Message(role="user", content="hi")])
    assert value("coditect_llm_requests_total", model="claude-sonnet-4-5") == calls0 + 2
    # The reused answer counts as a call but costs no tokens.
    assert value("coditect_llm_tokens_total", model="claude-sonnet-4-5", kind="input") == (
        before["input"] + 1000
    )
    assert value("coditect_llm_tokens_total", model="claude-sonnet-4-5", kind="output") == (
        before["output"] + 100
    )
    # List price 3 $/Mtok in, 15 $/Mtok out.
    assert value("coditect_llm_cost_usd_total", model="claude-sonnet-4-5") == pytest.approx(
        cost0 + 0.003 + 0.0015
    )
    assert model.name == "test:scripted"


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (SandboxResult(exit_code=0), "ok"),
        (SandboxResult(exit_code=1), "nonzero_exit"),
        (SandboxResult(exit_code=-9, timed_out=True), "timeout"),
        (SandboxResult(exit_code=-9, killed_by="memory"), "killed"),
    ],
)
def test_sandbox_outcome(result, outcome):
    assert sandbox_outcome(result) == outcome


async def test_metered_sandbox_counts_runs_by_backend_and_outcome(tmp_path):
    sandbox = MeteredSandbox(SubprocessSandbox())
    backend = sandbox.name
    ok0 = value("coditect_sandbox_runs_total", backend=backend, outcome="ok")
    bad0 = value("coditect_sandbox_runs_total", backend=backend, outcome="nonzero_exit")
    await sandbox.run(SandboxRequest(argv=(sys.executable, "-c", "pass"), workdir=tmp_path))
    await sandbox.run(
        SandboxRequest(argv=(sys.executable, "-c", "raise SystemExit(3)"), workdir=tmp_path)
    )
    assert value("coditect_sandbox_runs_total", backend=backend, outcome="ok") == ok0 + 1
    assert value("coditect_sandbox_runs_total", backend=backend, outcome="nonzero_exit") == bad0 + 1
    assert sandbox.supports((sys.executable, "-c", "pass"))


async def test_metered_sandbox_counts_a_sandbox_that_cannot_start(tmp_path):
    class Broken(Sandbox):
        name = "broken"

        async def run(self, request: SandboxRequest) -> SandboxResult:
            raise RuntimeError("no")

    before = value("coditect_sandbox_runs_total", backend="broken", outcome="error")
    with pytest.raises(RuntimeError):
        await MeteredSandbox(Broken()).run(SandboxRequest(argv=("x",), workdir=tmp_path))
    assert value("coditect_sandbox_runs_total", backend="broken", outcome="error") == before + 1


def test_lease_latency_is_the_time_since_enqueue():
    count0 = value("coditect_lease_latency_seconds_count", capability="lat")
    sum0 = value("coditect_lease_latency_seconds_sum", capability="lat")
    metrics.observe_lease_latency("lat", datetime.now(UTC) - timedelta(seconds=3))
    metrics.observe_lease_latency("lat", None)  # unknown: not counted
    assert value("coditect_lease_latency_seconds_count", capability="lat") == count0 + 1
    assert value("coditect_lease_latency_seconds_sum", capability="lat") - sum0 >= 3.0


def test_missions_running_and_ended():
    running0 = value("coditect_missions_running")
    ended0 = value("coditect_missions_total", status="SUCCESS")
    metrics.mission_started()
    assert value("coditect_missions_running") == running0 + 1
    metrics.mission_ended("SUCCESS")
    assert value("coditect_missions_running") == running0
    assert value("coditect_missions_total", status="SUCCESS") == ended0 + 1


def test_violations_are_counted_by_kind():
    before = value("coditect_consistency_violations_total", kind="syntax_error")
    metrics.count_violations(["syntax_error", "syntax_error"])
    assert value("coditect_consistency_violations_total", kind="syntax_error") == before + 2


async def test_queue_depth_poller_sets_and_zeroes_capabilities():
    answers: asyncio.Queue[dict[str, int] | Exception] = asyncio.Queue()
    calls = 0

    async def depth() -> dict[str, int]:
        nonlocal calls
        answer = await answers.get()
        calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def poll_once(answer: dict[str, int] | Exception) -> None:
        seen = calls
        await answers.put(answer)
        # The poller sets the gauge right after depth() returns, before it awaits again.
        while calls == seen:
            await asyncio.sleep(0.01)

    task = asyncio.create_task(metrics.poll_queue_depth(depth, interval_s=0.01))
    try:
        await poll_once({"qa": 3, "qb": 1})
        assert value("coditect_queue_depth", capability="qa") == 3
        await poll_once({"qb": 2})  # qa drained: reported as 0, not left at 3
        assert value("coditect_queue_depth", capability="qa") == 0
        assert value("coditect_queue_depth", capability="qb") == 2
        await poll_once(RuntimeError("NATS away"))  # the last values stay
        assert value("coditect_queue_depth", capability="qb") == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
