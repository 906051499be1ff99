"""The gRPC services on real servers: auth, TLS, health, reflection, deadlines, status codes."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from coditect.api.clients import ClientOptions, OrchestratorClient, TaskQueueClient
from coditect.api.errors import NotFoundError, RpcError
from coditect.api.security import TlsConfig
from coditect.api.server import open_channel
from coditect.distributed.settings import DistributedSettings
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import InputError
from coditect.llm.demo import fibonacci_model
from coditect.llm.testing import FunctionModel
from coditect.runtime.distributed import start_orchestrator, start_taskqueue

TOKEN = "s3cret-token"
REQUEST = "Add a function to calculate the nth Fibonacci number"


def settings(tmp_path, **kw) -> DistributedSettings:
    base = {
        "home": tmp_path / "home",
        "listen": "127.0.0.1:0",
        "connect_wait_s": 3.0,
        "rpc_retries": 0,
    }
    return DistributedSettings(**{**base, **kw})


@pytest.fixture
async def orchestrator(tmp_path):
    """An orchestrator with the scripted model (no task queue needed for planning)."""
    services = []

    async def start(model=None, **kw):
        cfg = settings(tmp_path, taskqueue="127.0.0.1:1", **kw)
        svc = await start_orchestrator(cfg, model=model or fibonacci_model())
        services.append(svc)
        return svc

    yield start
    for svc in services:
        await svc.stop()


def client(port: int, **kw) -> OrchestratorClient:
    return OrchestratorClient(ClientOptions(address=f"127.0.0.1:{port}", **{"retries": 0, **kw}))


async def test_plan_request_returns_the_dag(orchestrator, calculator_repo):
    svc = await orchestrator(token=TOKEN)
    async with client(svc.port, token=TOKEN) as c:
        resp = await c.submit(REQUEST, str(calculator_repo), plan_only=True)
    tasks = [(t.id, t.intent, list(t.depends_on), t.capability) for t in resp.plan.tasks]
    assert tasks == [
        ("t1", "analyze", [], "analyze"),
        ("t2", "write_code", ["t1"], "code"),
        ("t3", "write_tests", ["t2"], "code"),
        ("t4", "run_tests", ["t3"], "test"),
    ]
    assert resp.plan.source == "model" and len(resp.base_commit) == 40
    assert resp.mission_id and not resp.branch  # plan only: no branch created


async def test_missing_or_wrong_token_is_unauthenticated(orchestrator, calculator_repo):
    svc = await orchestrator(token=TOKEN)
    for token in ("", "wrong"):
        async with client(svc.port, token=token) as c:
            with pytest.raises(RpcError) as info:
                await c.submit(REQUEST, str(calculator_repo), plan_only=True)
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert "token" in info.value.hint


async def test_errors_map_to_status_codes(orchestrator, calculator_repo, tmp_path):
    svc = await orchestrator()
    async with client(svc.port) as c:
        with pytest.raises(NotFoundError, match="NOT_FOUND"):
            await c.get("no-such-mission")
        with pytest.raises(InputError, match="INVALID_ARGUMENT"):
            await c.submit("   ", str(calculator_repo), plan_only=True)
        with pytest.raises(InputError, match="not a git repository"):
            await c.submit(REQUEST, str(tmp_path), plan_only=True)


async def test_deadline_exceeded_is_a_retryable_error(orchestrator, calculator_repo):
    async def slow(messages, settings):
        await asyncio.sleep(3)
        return "t1 analyze"

    svc = await orchestrator(model=FunctionModel(slow))
    async with client(svc.port, deadline_s=0.3) as c:
        with pytest.raises(RpcError) as info:
            await c.submit(REQUEST, str(calculator_repo), plan_only=True)
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED and info.value.retryable


async def test_message_size_limit(orchestrator, calculator_repo):
    svc = await orchestrator(max_message_bytes=4096)
    async with client(svc.port) as c:
        with pytest.raises(RpcError) as info:
            await c.submit("x" * 10_000, str(calculator_repo), plan_only=True)
    assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_tls_and_mutual_tls(orchestrator, calculator_repo, certs):
    server_tls = {"tls_cert": certs.server_cert, "tls_key": certs.server_key}
    svc = await orchestrator(token=TOKEN, **server_tls)
    tls = TlsConfig(ca=certs.ca)
    async with client(svc.port, token=TOKEN, tls=tls) as c:
        resp = await c.submit(REQUEST, str(calculator_repo), plan_only=True)
    assert len(resp.plan.tasks) == 4
    async with client(svc.port, token=TOKEN, deadline_s=2) as c:  # plaintext to a TLS port
        with pytest.raises(RpcError) as info:
            await c.submit(REQUEST, str(calculator_repo), plan_only=True)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE

    mtls = await orchestrator(tls_ca=certs.ca, tls_require_client_cert=True, **server_tls)
    with_cert = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    async with client(mtls.port, tls=with_cert) as c:
        assert len((await c.submit(REQUEST, str(calculator_repo), plan_only=True)).plan.tasks) == 4
    async with client(mtls.port, tls=tls, deadline_s=2) as c:
        with pytest.raises(RpcError) as info:
            await c.submit(REQUEST, str(calculator_repo), plan_only=True)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


async def test_health_and_reflection_work_without_a_token(orchestrator):
    svc = await orchestrator(token=TOKEN)
    async with open_channel(f"127.0.0.1:{svc.port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "coditect.v1.Orchestrator"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def ask():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names = set()
        async for answer in refl.ServerReflectionInfo(ask(), timeout=5):
            names |= {s.name for s in answer.list_services_response.service}
    assert {"coditect.v1.Orchestrator", "grpc.health.v1.Health"} <= names


async def test_taskqueue_rejects_unauthenticated_enqueue(tmp_path, nats_url, redis_url, queue_name):
    cfg = settings(
        tmp_path, token=TOKEN, nats_url=nats_url, redis_url=redis_url, queue_name=queue_name
    )
    svc = await start_taskqueue(cfg)
    task = TaskSpec(id="t1", intent=Intent.ANALYZE, description="look")
    try:
        opts = {"address": f"127.0.0.1:{svc.port}", "retries": 0}
        async with TaskQueueClient(ClientOptions(**opts, token="nope")) as bad:
            with pytest.raises(RpcError) as info:
                await bad.enqueue("m-auth", task, "{}", 1)
            assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        async with TaskQueueClient(ClientOptions(**opts, token=TOKEN)) as good:
            assert await good.get_tasks("m-auth") == []  # nothing was recorded
            leased = await good.lease(["analyze"], "w1", wait_s=0.3)
            assert not leased.found  # and nothing was enqueued
            await good.enqueue("m-ok", task, "{}", 1)
            leased = await good.lease(["analyze"], "w1", wait_s=2)
            assert leased.found and leased.task_id == "t1"
            await good.complete(
                "m-ok",
                "t1",
                worker="w1",
                outcome_json='{"x": 1}',
                attempt=1,
                files=[],
                lease_id=leased.lease_id,
            )
            [stored] = await good.get_tasks("m-ok")
            assert stored.record.state == "complete" and stored.outcome_json == '{"x": 1}'
    finally:
        await svc.stop()


async def test_ten_tasks_are_all_leased_and_results_are_stored_at_once(
    tmp_path, nats_url, redis_url, queue_name
):
    """FR2: 10 enqueued tasks are all leased (bounded at 5 s); FR4: a result is readable at once."""
    cfg = settings(
        tmp_path, token=TOKEN, nats_url=nats_url, redis_url=redis_url, queue_name=queue_name
    )
    svc = await start_taskqueue(cfg)
    opts = ClientOptions(address=f"127.0.0.1:{svc.port}", token=TOKEN, retries=0)
    try:
        async with TaskQueueClient(opts) as c:
            for i in range(10):
                task = TaskSpec(id=f"t{i}", intent=Intent.WRITE_CODE, description="x")
                await c.enqueue("m-fr2", task, "{}", 1)
            leased = []

            async def lease_all(worker: str) -> None:
                while len(leased) < 10:
                    got = await c.lease(["code"], worker, wait_s=0.5)
                    if got.found:
                        leased.append(got)

            async with asyncio.timeout(5):
                await asyncio.gather(lease_all("w1"), lease_all("w2"))
            assert sorted(int(x.task_id[1:]) for x in leased) == list(range(10))
            states = {v.record.task_id: v.record.state for v in await c.get_tasks("m-fr2")}
            assert set(states.values()) == {"running"}
            first = leased[0]
            await c.complete(
                "m-fr2",
                first.task_id,
                worker="w1",
                outcome_json='{"ok": 1}',
                attempt=1,
                files=[],
                lease_id=first.lease_id,
            )
            done = {v.record.task_id: v for v in await c.get_tasks("m-fr2")}[first.task_id]
            assert done.record.state == "complete" and done.outcome_json == '{"ok": 1}'
    finally:
        await svc.stop()
