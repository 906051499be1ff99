"""The gRPC ``Lease`` path keeps a task in its mission's trace; ``coditect_tasks`` per state.

Real task queue service (gRPC), NATS JetStream and Redis; spans recorded in memory.
"""

from __future__ import annotations

import asyncio
import urllib.request

from opentelemetry.trace import format_trace_id
from prometheus_client.parser import text_string_to_metric_families

from coditect.api.clients import ClientOptions, TaskQueueClient
from coditect.distributed.settings import DistributedSettings
from coditect.domain.tasks import GoalState, Intent, TaskSpec
from coditect.runtime.distributed import start_taskqueue
from coditect.telemetry import metrics, tracing

WAIT_S = 15.0  # every wait below raises if what it waits for has not happened by then


def settings(tmp_path, nats_url, redis_url, queue_name, **kw) -> DistributedSettings:
    return DistributedSettings(
        home=tmp_path / "home",
        listen="127.0.0.1:0",
        connect_wait_s=3.0,
        rpc_retries=0,
        nats_url=nats_url,
        redis_url=redis_url,
        queue_name=queue_name,
        **kw,
    )


def client(port: int) -> TaskQueueClient:
    return TaskQueueClient(ClientOptions(address=f"127.0.0.1:{port}", retries=0))


def task(task_id: str) -> TaskSpec:
    return TaskSpec(id=task_id, intent=Intent.WRITE_CODE, description="x")


async def lease_one(c: TaskQueueClient, worker: str):
    async with asyncio.timeout(WAIT_S):
        while not (leased := await c.lease(["code"], worker, wait_s=0.5)).found:
            pass
    return leased


async def test_a_task_leased_over_grpc_continues_the_mission_trace(
    tmp_path, nats_url, redis_url, queue_name, spans
):
    svc = await start_taskqueue(settings(tmp_path, nats_url, redis_url, queue_name))
    try:
        async with client(svc.port) as c:
            with tracing.span("test.orchestrator", kind=tracing.SpanKind.CLIENT) as root:
                await c.enqueue("m-trace", task("t1"), "{}", 1)
            leased = await lease_one(c, "w1")  # outside any span: the context comes from the queue
            assert leased.task_id == "t1"
            headers = dict(leased.trace_headers)
            assert set(headers) <= {"traceparent", "tracestate", "baggage"}, headers
            trace_id = format_trace_id(root.get_span_context().trace_id)
            assert headers["traceparent"].split("-")[1] == trace_id
            with c.task_span(leased, worker="w1"):
                await c.heartbeat("m-trace", "t1", worker="w1", lease_id=leased.lease_id)
                await c.complete(
                    "m-trace",
                    "t1",
                    worker="w1",
                    outcome_json='{"ok": 1}',
                    attempt=1,
                    files=[],
                    lease_id=leased.lease_id,
                )
    finally:
        await svc.stop()
    finished = [
        s for s in spans.get_finished_spans() if s.context.trace_id == root.context.trace_id
    ]
    by_name = {s.name: s for s in finished}
    assert {
        "coditect.v1.TaskQueue/Enqueue",
        "taskqueue.publish",
        "worker.task",
        "coditect.v1.TaskQueue/Heartbeat",
        "coditect.v1.TaskQueue/Complete",
    } <= set(by_name), sorted(by_name)
    work = by_name["worker.task"]
    assert work.parent is not None
    assert work.parent.span_id == by_name["taskqueue.publish"].context.span_id
    assert work.attributes["coditect.task_id"] == "t1"
    assert work.attributes["coditect.worker"] == "w1"
    for rpc in ("coditect.v1.TaskQueue/Heartbeat", "coditect.v1.TaskQueue/Complete"):
        assert by_name[rpc].parent.span_id == work.context.span_id


async def test_a_dead_lettered_task_is_settled_in_its_mission_trace(
    tmp_path, nats_url, redis_url, queue_name, spans
):
    """A worker leases over gRPC and dies: the redelivery past max_deliveries is dead-lettered."""
    cfg = settings(tmp_path, nats_url, redis_url, queue_name, max_deliveries=1, ack_wait_s=1.0)
    svc = await start_taskqueue(cfg)
    try:
        async with client(svc.port) as c:
            with tracing.span("test.orchestrator") as root:
                await c.enqueue("m-dead", task("t1"), "{}", 1)
            await lease_one(c, "w-dies")  # never settled
            async with asyncio.timeout(WAIT_S):
                while True:  # the redelivery goes to the dead-letter stream, then to FAILED
                    assert not (await c.lease(["code"], "w2", wait_s=0.3)).found
                    [stored] = await c.get_tasks("m-dead")
                    if stored.record.state == GoalState.FAILED:
                        break
            assert "dead-lettered: delivered 2 times" in stored.record.error
            async with asyncio.timeout(WAIT_S):
                while not [
                    s for s in spans.get_finished_spans() if s.name == "taskqueue.dead_letter"
                ]:
                    await asyncio.sleep(0.05)
    finally:
        await svc.stop()
    [settle] = [s for s in spans.get_finished_spans() if s.name == "taskqueue.dead_letter"]
    assert settle.context.trace_id == root.get_span_context().trace_id
    assert settle.attributes["coditect.task_id"] == "t1"


def scrape(url: str) -> dict[str, float]:
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        s.labels["state"]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "coditect_tasks"
    }


async def test_metrics_report_tasks_by_state_from_redis_across_a_restart(
    tmp_path, nats_url, redis_url, queue_name
):
    cfg = settings(tmp_path, nats_url, redis_url, queue_name, metrics_listen="127.0.0.1:0")
    svc = await start_taskqueue(cfg)
    try:
        async with client(svc.port) as c:
            for i in range(3):
                await c.enqueue("m-gauge", task(f"t{i}"), "{}", 1)
            leased = await lease_one(c, "w1")
            await c.complete(
                "m-gauge",
                leased.task_id,
                worker="w1",
                outcome_json="{}",
                attempt=1,
                files=[],
                lease_id=leased.lease_id,
            )
        assert svc.metrics is not None
        before = await asyncio.to_thread(scrape, svc.metrics.url)
    finally:
        await svc.stop()
    # The session's Redis is shared with other tests: compare with what Redis holds.
    from coditect.state.redis_world import connect_redis

    redis = await connect_redis(redis_url)
    try:
        raw = await redis.hgetall("coditect:task-counts")
    finally:
        await redis.aclose()
    in_redis = {k.decode(): float(v) for k, v in raw.items()}
    assert before == {s.value: in_redis.get(s.value, 0.0) for s in GoalState}
    assert before["complete"] >= 1 and before["pending"] >= 2

    metrics.set_task_counts({s.value: 0 for s in GoalState})  # as in a new process
    svc = await start_taskqueue(cfg)
    try:
        assert svc.metrics is not None
        after = await asyncio.to_thread(scrape, svc.metrics.url)
    finally:
        await svc.stop()
    assert after == before
