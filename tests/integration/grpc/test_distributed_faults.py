"""Distributed-mode faults in one test process: real gRPC, JetStream, Redis and PostgreSQL.

A dead-lettered task fails its mission at once; cancelling a mission stops the task a worker
is running. The services run as asyncio tasks (as in test_distributed_inprocess.py); the
multi-process variants of other faults are in tests/e2e/test_distributed.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from coditect.api.clients import ClientOptions, OrchestratorClient, TaskQueueClient
from coditect.api.security import TlsConfig
from coditect.distributed.settings import DistributedSettings
from coditect.distributed.worker import Worker
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS, fibonacci_model
from coditect.llm.testing import FunctionModel
from coditect.runtime.distributed import (
    RunningService,
    build_worker,
    start_orchestrator,
    start_taskqueue,
)

TOKEN = "tok"
REQUEST = "Add a function to calculate the nth Fibonacci number"
_WAIT_S = 60.0
#: Runs a test on one Redis server and on a 3-node Redis Cluster (see ``redis_settings``).
ON_SINGLE_AND_CLUSTER_REDIS = pytest.mark.parametrize(
    "redis_settings", ["single", "cluster"], indirect=True
)


@dataclass
class Cluster:
    """Task queue and orchestrator servers of one test, and its workers."""

    common: dict[str, Any]
    certs: Any
    services: list[RunningService] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)
    tq_port: int = 0
    orch_port: int = 0

    def _server_tls(self) -> dict[str, Any]:
        c = self.certs
        return {"tls_cert": c.server_cert, "tls_key": c.server_key, "tls_ca": c.ca}

    async def start(self) -> None:
        tq = await start_taskqueue(
            DistributedSettings(**self.common, **self._server_tls(), listen="127.0.0.1:0")
        )
        self.services.append(tq)
        self.tq_port = tq.port
        await self.start_orchestrator()

    async def start_orchestrator(self) -> None:
        orch = await start_orchestrator(
            DistributedSettings(
                **self.common,
                **self._server_tls(),
                listen="127.0.0.1:0",
                taskqueue=f"127.0.0.1:{self.tq_port}",
            ),
            model=fibonacci_model(),
        )
        self.services.append(orch)
        self.orch_port = orch.port

    async def stop_orchestrator(self) -> None:
        """Stop the orchestrator gracefully (as on SIGTERM)."""
        await self.services.pop().stop()

    async def worker(
        self, name: str, *, run: bool = True, model: Any = None, **settings: Any
    ) -> Worker:
        """A worker named ``name``, running in a task unless ``run`` is False."""
        cfg = DistributedSettings(
            **{**self.common, **settings},
            tls_ca=self.certs.ca,
            taskqueue=f"127.0.0.1:{self.tq_port}",
            worker_id=name,
        )
        worker, close = await build_worker(cfg, model=model or fibonacci_model())
        self.closers.extend(close)
        if run:
            self.tasks.append(asyncio.create_task(worker.run()))
        return worker

    def options(self, port: int) -> ClientOptions:
        return ClientOptions(
            address=f"127.0.0.1:{port}", token=TOKEN, tls=TlsConfig(ca=self.certs.ca)
        )

    async def task_states(self, mission_id: str) -> dict[str, Any]:
        async with TaskQueueClient(self.options(self.tq_port)) as tq:
            return {v.record.task_id: v.record for v in await tq.get_tasks(mission_id)}

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in reversed(self.closers):
            await close()
        for service in reversed(self.services):
            await service.stop()


@pytest.fixture
async def make_cluster(service_settings, certs) -> AsyncIterator[Any]:
    """``await make_cluster(**settings)``: started services with these settings overridden."""
    clusters: list[Cluster] = []

    async def make(**overrides: Any) -> Cluster:
        common = {**service_settings, "mission_timeout_s": 600.0, **overrides}
        cluster = Cluster(common=common, certs=certs)
        clusters.append(cluster)
        await cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        await cluster.close()


async def _run_to_end(client: OrchestratorClient, mission_id: str) -> list[Any]:
    """Every event of the mission until it ends (bounded well below the mission timeout)."""
    async with asyncio.timeout(_WAIT_S):
        return [event async for event in client.watch(mission_id)]


@ON_SINGLE_AND_CLUSTER_REDIS
async def test_dead_lettered_task_fails_its_mission_with_the_reason(make_cluster, calculator_repo):
    # One delivery allowed: a task whose worker dies is dead-lettered at its next delivery.
    cluster = await make_cluster(ack_wait_s=1.0, max_deliveries=1)
    dying = await cluster.worker("dying", run=False)
    async with OrchestratorClient(cluster.options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
        # The "dying" worker leases t1 and then never answers (no heartbeat, no ack).
        async with asyncio.timeout(_WAIT_S):
            leases = []
            while not leases:
                leases = await dying.workqueue.fetch("analyze", timeout_s=1.0)
        assert leases[0].message.task_id == "t1"
        # The next worker's fetch is the second delivery: over the limit, so dead-lettered.
        await cluster.worker("w2")
        events = await _run_to_end(client, resp.mission_id)
        report = await client.get(resp.mission_id)
    assert report.status == "FAILED", report.reason
    assert "dead-lettered" in report.reason and "delivered 2 times" in report.reason, report.reason
    t1 = report.tasks[0]
    assert t1.status == "failed" and "max_deliveries=1" in t1.error
    assert all(t.status != "complete" for t in report.tasks)
    failed = [e for e in events if e.type == "task.state" and e.state == "failed"]
    assert [e.task_id for e in failed] == ["t1"]
    assert events[-1].type == "mission.state" and events[-1].state == "failed"


@ON_SINGLE_AND_CLUSTER_REDIS
async def test_cancel_stops_the_task_a_worker_is_running(make_cluster, calculator_repo, git):
    cluster = await make_cluster()
    await cluster.worker("w1", capabilities="analyze,test")
    # The code task would sleep for ten minutes before its agent runs: only a cancel ends it.
    slow = await cluster.worker("slow", capabilities="code", task_delay_s=600.0)
    async with OrchestratorClient(cluster.options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
        async with asyncio.timeout(_WAIT_S):
            while True:
                rec = (await cluster.task_states(resp.mission_id)).get("t2")
                if rec is not None and rec.state == "running" and rec.worker == "slow":
                    break
                await asyncio.sleep(0.05)
        assert await client.cancel(resp.mission_id, "changed my mind")
        events = await _run_to_end(client, resp.mission_id)
        report = await client.get(resp.mission_id)
    assert report.status == "CANCELLED", report.reason
    assert events[-1].type == "mission.state" and events[-1].state == "cancelled"
    # The worker stops the task (it does not sleep on for ten minutes) and drops its message.
    async with asyncio.timeout(_WAIT_S):
        while slow.tasks_cancelled == 0:
            await asyncio.sleep(0.05)
    assert slow.tasks_done == 0
    states = await cluster.task_states(resp.mission_id)
    assert states["t2"].state == "cancelled" and states["t2"].error == "changed my mind"
    assert "t3" not in states  # never enqueued
    # Nothing was pushed: the mission branch is where it started.
    assert git(calculator_repo, "rev-parse", resp.branch) == git(
        calculator_repo, "rev-parse", "main"
    )


async def test_watch_streams_the_agents_events_of_the_workers(make_cluster, calculator_repo):
    cluster = await make_cluster()
    await cluster.worker("w1")
    async with OrchestratorClient(cluster.options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
        live = await _run_to_end(client, resp.mission_id)
        report = await client.get(resp.mission_id)
        stored = await _run_to_end(client, resp.mission_id)  # after the end: from the store
    assert report.status == "SUCCESS", report.reason
    agent = [e for e in live if e.type.startswith("agent.")]
    assert {"agent.think", "agent.act"} <= {e.type for e in agent}, [e.type for e in live]
    # What each agent did, named <agent>@<worker>, under the task it did it for.
    assert {e.task_id for e in agent} >= {"t2", "t3"}
    assert all(e.agent.endswith("@w1") and e.mission_id == resp.mission_id for e in agent)
    coder = [e for e in agent if e.type == "agent.act" and e.task_id == "t2"]
    assert coder and coder[0].action == "generate"
    assert {e.event_id for e in stored} >= {e.event_id for e in live}


def _wrong_code_first() -> FunctionModel:
    """The scripted model, except that its first code is off by one (so tests fail once)."""
    codes = iter([FIBONACCI_CODE.replace("return a\n", "return a + 1\n")])

    def answer(messages, settings):
        if settings.purpose == "plan":
            return FIBONACCI_PLAN
        if "test" in settings.purpose:
            return FIBONACCI_TESTS
        return next(codes, FIBONACCI_CODE)

    return FunctionModel(answer)


async def test_a_stopped_orchestrators_mission_is_resumed_by_the_next(
    make_cluster, calculator_repo
):
    cluster = await make_cluster()
    await cluster.worker("w1", model=_wrong_code_first())
    async with OrchestratorClient(cluster.options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
    mid = resp.mission_id
    # Stop the orchestrator once the tests failed and it dispatched the repair round.
    async with asyncio.timeout(_WAIT_S):
        while "repair1" not in await cluster.task_states(mid):
            await asyncio.sleep(0.05)
    await cluster.stop_orchestrator()
    await cluster.start_orchestrator()
    async with OrchestratorClient(cluster.options(cluster.orch_port)) as client:
        events = await _run_to_end(client, mid)
        report = await client.get(mid)
    assert report.status == "SUCCESS", (report.reason, [(t.id, t.status) for t in report.tasks])
    assert [(t.id, t.status) for t in report.tasks] == [
        ("t1", "complete"),
        ("t2", "complete"),
        ("t3", "complete"),
        ("t4", "failed"),
        ("repair1", "complete"),
        ("retest1", "complete"),
    ]
    assert report.tasks[3].superseded_by == "retest1"
    assert report.tests.failed == 0 and report.tests.passed >= 7
    resumed = [e for e in events if e.type == "mission.state" and "resumed" in e.reason]
    assert len(resumed) == 1
    assert events[-1].type == "mission.state" and events[-1].state == "complete"
