"""Distributed mode end to end: every service a separate OS process.

Orchestrator, task queue and workers run as ``python -m coditect ...`` processes talking over
real gRPC (TLS + bearer token), NATS JetStream, Redis and PostgreSQL, started by the session
fixtures on free ports. Faults are injected with real signals (kill -9, SIGTERM + restart).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coditect.api.clients import OrchestratorClient, TaskQueueClient
from infra.cluster import Cluster, cluster_env

pytestmark = pytest.mark.slow  # separate processes: about a minute in all

REQUEST = "Add a function to calculate the nth Fibonacci number"
_WAIT_S = 60.0


@pytest.fixture
def cluster(tmp_path, nats_url, redis_url, postgres_url):
    env = cluster_env(tmp_path, nats_url=nats_url, redis_url=redis_url, postgres_url=postgres_url)
    c = Cluster(tmp_path, env)
    yield c
    c.stop()


def _commits(git, repo: Path, branch: str) -> list[str]:
    return git(repo, "log", "--format=%B%x00", f"main..{branch}").split("\x00")[:-1]


async def _tasks(cluster: Cluster, mission_id: str):
    async with TaskQueueClient(cluster.client_options(cluster.tq_port)) as tq:
        return {v.record.task_id: v.record for v in await tq.get_tasks(mission_id)}


async def _wait_running(cluster: Cluster, mission_id: str, task_id: str, worker: str) -> None:
    async with asyncio.timeout(_WAIT_S):
        while True:
            rec = (await _tasks(cluster, mission_id)).get(task_id)
            if rec is not None and rec.state == "running" and rec.worker == worker:
                return
            await asyncio.sleep(0.1)


async def _final_report(cluster: Cluster, mission_id: str):
    async with OrchestratorClient(cluster.client_options(cluster.orch_port)) as client:
        async with asyncio.timeout(_WAIT_S * 2):
            async for _event in client.watch(mission_id):
                pass
        return await client.get(mission_id)


def test_fibonacci_mission_across_processes(cluster, calculator_repo, git):
    cluster.start_taskqueue()
    cluster.start_orchestrator()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    submit = subprocess.run(
        [sys.executable, "-m", "coditect", "submit", REQUEST, "--repo", str(calculator_repo), "--watch", "--json"],
        env=cluster.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr + cluster.logs()
    # --watch shows what the agents on the workers do, not only the tasks' states.
    assert re.search(r"agent\.act t2 \w+@w[12] generate", submit.stderr), submit.stderr
    report = json.loads(submit.stdout)
    assert report["status"] == "SUCCESS", report["reason"] + cluster.logs()
    assert [t["intent"] for t in report["tasks"]] == [
        "analyze",
        "write_code",
        "write_tests",
        "run_tests",
    ]
    assert set(report["changed_files"]) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",  # the package re-exports arithmetic wholesale
        "tests/test_arithmetic.py",
    }
    assert report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 7
    assert {t["agent"].split("@")[1] for t in report["tasks"]} <= {"w1", "w2"}
    assert git(calculator_repo, "rev-parse", report["branch"]).strip() == report["commit"]
    assert len(_commits(git, calculator_repo, report["branch"])) == 2


async def test_worker_killed_mid_task_is_redelivered_and_applied_once(
    cluster, calculator_repo, git
):
    cluster.start_taskqueue()
    cluster.start_orchestrator()
    cluster.start_worker("fast", "analyze,test")
    slow = cluster.start_worker("slow", "code", CODITECT_TASK_DELAY_S="60")
    async with OrchestratorClient(cluster.client_options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
    await _wait_running(cluster, resp.mission_id, "t2", "slow")
    slow.stop(signal.SIGKILL)
    cluster.start_worker("rescuer", "code")
    report = await _final_report(cluster, resp.mission_id)
    assert report.status == "SUCCESS", report.reason + cluster.logs()
    assert report.tasks[1].agent.endswith("@rescuer")
    messages = _commits(git, calculator_repo, resp.branch)
    assert sum(f"Coditect-Task: {resp.mission_id}/t2" in m for m in messages) == 1, messages
    assert sum(f"Coditect-Task: {resp.mission_id}/t3" in m for m in messages) == 1, messages


async def test_task_queue_restart_mid_mission(cluster, calculator_repo):
    tq = cluster.start_taskqueue()
    port = cluster.tq_port
    cluster.start_orchestrator()
    cluster.start_worker("w1", CODITECT_TASK_DELAY_S="2")
    async with OrchestratorClient(cluster.client_options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
    await _wait_running(cluster, resp.mission_id, "t2", "w1")
    assert tq.stop(signal.SIGKILL) != 0
    cluster.start_taskqueue(port)  # same address: clients reconnect by themselves
    report = await _final_report(cluster, resp.mission_id)
    assert report.status == "SUCCESS", report.reason + cluster.logs()


@pytest.mark.parametrize("down", ["nats", "redis"])
def test_backend_down_at_start_is_a_clear_error_not_a_hang(cluster, down):
    from infra.servers import free_port

    dead = f"127.0.0.1:{free_port()}"
    env = {"CODITECT_CONNECT_WAIT_S": "2"}
    env["CODITECT_NATS_URL" if down == "nats" else "CODITECT_REDIS_URL"] = (
        f"nats://{dead}" if down == "nats" else f"redis://{dead}/0"
    )
    t0 = time.monotonic()
    for args in (["serve", "taskqueue", "--listen", "127.0.0.1:0"], ["worker"]):
        proc = cluster.start(f"{down}-down", *args, **env)
        code = proc.proc.wait(timeout=60)
        out = proc.text()
        assert code == 1, out
        assert ("cannot connect to NATS" if down == "nats" else "cannot reach Redis") in out, out
        assert dead in out and "Traceback" not in out
    assert time.monotonic() - t0 < 60


async def test_orchestrator_restart_mid_mission_resumes_it(cluster, calculator_repo, git):
    cluster.start_taskqueue()
    orch = cluster.start_orchestrator()
    cluster.start_worker("w1", CODITECT_TASK_DELAY_S="2")
    async with OrchestratorClient(cluster.client_options(cluster.orch_port)) as client:
        resp = await client.submit(REQUEST, str(calculator_repo))
    await _wait_running(cluster, resp.mission_id, "t2", "w1")
    assert orch.stop(signal.SIGKILL) != 0
    again = cluster.start_orchestrator()  # a new process: finds the mission RUNNING, resumes it
    report = await _final_report(cluster, resp.mission_id)
    assert report.status == "SUCCESS", report.reason + cluster.logs()
    assert f"resuming mission {resp.mission_id} after 1 step(s)" in again.text()
    assert [t.status for t in report.tasks] == ["complete"] * 4
    assert set(report.changed_files) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",  # the package re-exports arithmetic wholesale
        "tests/test_arithmetic.py",
    }
    messages = _commits(git, calculator_repo, resp.branch)
    for task_id in ("t2", "t3"):
        assert sum(f"Coditect-Task: {resp.mission_id}/{task_id}" in m for m in messages) == 1


def test_a_worker_with_a_wrong_token_exits_with_a_clear_message(cluster: Cluster) -> None:
    """Issue 12: refused credentials are found before any task is taken, not by a mission."""
    cluster.start_taskqueue()
    bad = cluster.start("bad-worker", "worker", "--worker-id", "bad", "--token", "WRONG")
    try:
        code = bad.proc.wait(timeout=60)
    finally:
        bad.stop()
    log = " ".join(bad.text().split())  # the error is wrapped to the terminal's width
    assert code != 0, log
    assert "refused by the task queue service" in log and "UNAUTHENTICATED" in log, log
    assert "started" not in log, log
