"""The distributed pipeline in one test process: real gRPC, JetStream, Redis and PostgreSQL.

The services run as asyncio tasks here (quick to debug); tests/e2e/test_distributed.py runs
the same pieces as separate OS processes.
"""

from __future__ import annotations

import asyncio

import pytest

from coditect.api.clients import ClientOptions, OrchestratorClient, TaskQueueClient
from coditect.distributed.settings import DistributedSettings
from coditect.llm.demo import fibonacci_model
from coditect.runtime.distributed import build_worker, start_orchestrator, start_taskqueue
from coditect.state.redis_world import connect_redis

TOKEN = "tok"
REQUEST = "Add a function to calculate the nth Fibonacci number"
#: Runs a test on one Redis server and on a 3-node Redis Cluster (see ``redis_settings``).
ON_SINGLE_AND_CLUSTER_REDIS = pytest.mark.parametrize(
    "redis_settings", ["single", "cluster"], indirect=True
)


@pytest.fixture
async def cluster(service_settings, certs):
    """Task queue + orchestrator servers (TLS + token) and a factory of in-process workers."""
    common = service_settings
    server_tls = {"tls_cert": certs.server_cert, "tls_key": certs.server_key, "tls_ca": certs.ca}
    tq = await start_taskqueue(DistributedSettings(**common, **server_tls, listen="127.0.0.1:0"))
    # Clients verify the server with the CA; servers present their own certificate.
    client_tls = {"tls_ca": certs.ca}
    orch_cfg = DistributedSettings(
        **common, **server_tls, listen="127.0.0.1:0", taskqueue=f"127.0.0.1:{tq.port}"
    )
    # The orchestrator is a client of the task queue: it verifies it with the same CA.
    orch = await start_orchestrator(orch_cfg, model=fibonacci_model())
    workers: list[asyncio.Task] = []
    closers = []

    async def start_worker(name: str, **kw):
        cfg = DistributedSettings(
            **{**common, **kw}, **client_tls, taskqueue=f"127.0.0.1:{tq.port}", worker_id=name
        )
        worker, close = await build_worker(cfg, model=fibonacci_model())
        closers.extend(close)
        workers.append(asyncio.create_task(worker.run()))
        return worker

    yield orch, tq, start_worker, client_tls
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for close in reversed(closers):
        await close()
    await orch.stop()
    await tq.stop()


async def assert_mission_keys_expire(settings: DistributedSettings, mission_id: str) -> None:
    """Every ``coditect:*`` key of the mission expires within the state retention."""
    redis = await connect_redis(
        None if settings.cluster_nodes else settings.redis_url,
        cluster_nodes=settings.cluster_nodes,
        max_wait_s=3,
    )
    try:
        keys = sorted(
            [
                k.decode() if isinstance(k, bytes) else k
                async for k in redis.scan_iter(match=f"coditect:*{mission_id}*", count=500)
            ]
        )  # on a cluster, scan_iter visits every primary
        kinds = {k.split(":")[1] for k in keys}
        assert {"tasks", "results", "applied", "files", "checkpoint", "lock"} <= kinds, keys
        assert f"coditect:lock:{{push.{mission_id}}}:fence" in keys
        limit_ms = settings.state_retention_s * 1000
        ttls = {k: await redis.pttl(k) for k in keys}
        assert all(0 < ms <= limit_ms for ms in ttls.values()), ttls
    finally:
        await redis.aclose()


@ON_SINGLE_AND_CLUSTER_REDIS
async def test_fibonacci_mission_over_grpc_jetstream_redis_postgres(
    cluster, calculator_repo, git, certs, service_settings
):
    orch, tq, start_worker, _ = cluster
    await start_worker("w1")
    await start_worker("w2")
    from coditect.api.security import TlsConfig

    opts = ClientOptions(address=f"127.0.0.1:{orch.port}", token=TOKEN, tls=TlsConfig(ca=certs.ca))
    async with OrchestratorClient(opts) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
        assert [t.id for t in resp.plan.tasks] == ["t1", "t2", "t3", "t4"]
        events = []
        async with asyncio.timeout(120):
            async for event in client.watch(resp.mission_id):
                events.append(event)
        report = await client.get(resp.mission_id)
    assert report.status == "SUCCESS", (
        report.reason,
        [(t.id, t.status, t.agent, t.error) for t in report.tasks],
    )
    assert set(report.changed_files) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",  # the package re-exports arithmetic wholesale
        "tests/test_arithmetic.py",
    }
    assert report.tests.failed == 0 and report.tests.passed >= 7
    assert all(t.status == "complete" for t in report.tasks)
    assert events[-1].type == "mission.state" and events[-1].state == "complete"
    # The change is on the mission branch of the user's repository, one commit per changing task.
    log = git(calculator_repo, "log", "--format=%s", f"main..{resp.branch}").splitlines()
    assert len(log) == 2, log
    assert git(calculator_repo, "rev-parse", resp.branch).strip() == report.commit
    assert "def fibonacci" in git(
        calculator_repo, "show", f"{resp.branch}:calculator/arithmetic.py"
    )
    # The world model of the branch is queryable through the task queue service.
    tq_opts = ClientOptions(address=f"127.0.0.1:{tq.port}", token=TOKEN, tls=TlsConfig(ca=certs.ca))
    async with TaskQueueClient(tq_opts) as tqc:
        files = await tqc.query_world(resp.mission_id, "tests/*.py")
    assert "tests/test_arithmetic.py" in {f.path for f in files}
    # Every Redis key of the mission expires after the (test's 1-hour) state retention.
    await assert_mission_keys_expire(DistributedSettings(**service_settings), resp.mission_id)


async def test_one_trace_follows_a_mission_through_orchestrator_queue_and_worker(
    cluster, calculator_repo, certs, spans
):
    """The trace context crosses gRPC (metadata) and NATS (message headers)."""
    from opentelemetry.trace import format_trace_id

    from coditect.api.security import TlsConfig
    from coditect.telemetry import tracing

    orch, _tq, start_worker, _ = cluster
    await start_worker("w1")
    opts = ClientOptions(address=f"127.0.0.1:{orch.port}", token=TOKEN, tls=TlsConfig(ca=certs.ca))
    async with OrchestratorClient(opts) as client:
        with tracing.span("test.submit", kind=tracing.SpanKind.CLIENT) as root:
            resp = await client.submit(REQUEST, str(calculator_repo))
        async with asyncio.timeout(120):
            async for _event in client.watch(resp.mission_id):
                pass
        report = await client.get(resp.mission_id)
    assert report.status == "SUCCESS", report.reason
    trace_id = root.get_span_context().trace_id

    def mission_spans():
        return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]

    # A span ends just after the work it covers (e.g. the ack after the report): wait for them.
    async with asyncio.timeout(30):
        while {"orchestrator.mission", "worker.task"} - {s.name for s in mission_spans()} or (
            sum(s.name == "worker.task" for s in mission_spans()) < 4
        ):
            await asyncio.sleep(0.05)
    finished = mission_spans()
    names = {s.name for s in finished}
    # orchestrator
    assert {"coditect.v1.Orchestrator/SubmitMission", "orchestrator.plan"} <= names, names
    assert {"orchestrator.mission", "orchestrator.task"} <= names, names
    # task queue: gRPC server spans (context from the metadata) and the NATS publish
    assert {"coditect.v1.TaskQueue/Enqueue", "taskqueue.publish"} <= names, names
    assert {"coditect.v1.TaskQueue/Heartbeat", "coditect.v1.TaskQueue/Complete"} <= names, names
    # worker: one span per task, each a child of the publish that queued it (NATS headers)
    publishes = {s.context.span_id: s for s in finished if s.name == "taskqueue.publish"}
    tasks = [s for s in finished if s.name == "worker.task"]
    assert sorted(s.attributes["coditect.task_id"] for s in tasks) == ["t1", "t2", "t3", "t4"]
    for s in tasks:
        assert s.parent is not None and s.parent.span_id in publishes
        parent = publishes[s.parent.span_id]
        assert parent.attributes["coditect.task_id"] == s.attributes["coditect.task_id"]
        assert s.attributes["coditect.outcome"] == "acked"
        assert s.attributes["coditect.mission_id"] == resp.mission_id
    assert format_trace_id(trace_id) in {
        format_trace_id(s.context.trace_id) for s in finished if s.name == "llm.request"
    }
