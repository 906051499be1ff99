"""One mission across separate processes leaves one trace and shows up in every /metrics.

The services run as in tests/e2e/test_distributed.py (real gRPC with TLS, NATS JetStream, Redis,
PostgreSQL); every process, ``coditect submit`` included, appends its spans to one JSON-lines
file (``CODITECT_TRACE_FILE``) and each service serves Prometheus metrics
(``CODITECT_METRICS_LISTEN``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_distributed import REQUEST, Cluster, cluster  # noqa: F401  (the fixture)

from infra.servers import free_port

pytestmark = pytest.mark.slow

_WAIT_S = 30.0


def _spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


def _eventually(check, what: str, logs) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {_WAIT_S:g}s\n{logs()}")
        time.sleep(0.1)


def test_one_trace_and_metrics_across_processes(cluster: Cluster, calculator_repo, tmp_path):  # noqa: F811
    trace_file = tmp_path / "spans.jsonl"
    cluster.env["CODITECT_TRACE_FILE"] = str(trace_file)
    ports = {name: free_port() for name in ("taskqueue", "orchestrator", "w1")}
    cluster.env["CODITECT_METRICS_LISTEN"] = f"127.0.0.1:{ports['taskqueue']}"
    cluster.start_taskqueue()
    cluster.env["CODITECT_METRICS_LISTEN"] = f"127.0.0.1:{ports['orchestrator']}"
    cluster.start_orchestrator()
    del cluster.env["CODITECT_METRICS_LISTEN"]
    cluster.start_worker("w1", CODITECT_METRICS_LISTEN=f"127.0.0.1:{ports['w1']}")
    submit = subprocess.run(
        [sys.executable, "-m", "coditect", "submit", REQUEST, "--repo", str(calculator_repo), "--watch", "--json"],
        env=cluster.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr + cluster.logs()
    report = json.loads(submit.stdout)
    mission_id = report["mission_id"]
    assert report["status"] == "SUCCESS", report["reason"] + cluster.logs()

    # --- one trace id on spans of every process --------------------------------------------
    def mission_trace() -> tuple[str, list[dict]]:
        spans = _spans(trace_file)
        roots = [s for s in spans if s["name"] == "coditect.submit"]
        if len(roots) != 1:
            return "", []
        tid = roots[0]["trace_id"]
        return tid, [s for s in spans if s["trace_id"] == tid]

    def complete() -> bool:
        _tid, spans = mission_trace()
        return sum(s["name"] == "worker.task" for s in spans) == 4 and any(
            s["name"] == "orchestrator.mission" for s in spans
        )

    _eventually(complete, "the mission's spans", cluster.logs)
    trace_id, spans = mission_trace()
    by_service: dict[str, set[str]] = {}
    for s in spans:
        by_service.setdefault(s["service"], set()).add(s["name"])
    assert set(by_service) == {
        "coditect-client",
        "coditect-orchestrator",
        "coditect-taskqueue",
        "coditect-worker",
    }, by_service
    assert {
        "coditect.v1.Orchestrator/SubmitMission",
        "coditect.v1.Orchestrator/WatchMission",
        "orchestrator.plan",
        "orchestrator.mission",
        "orchestrator.task",
    } <= by_service["coditect-orchestrator"]
    assert {"coditect.v1.TaskQueue/Enqueue", "taskqueue.publish"} <= by_service[
        "coditect-taskqueue"
    ]
    assert "worker.task" in by_service["coditect-worker"]
    assert len({s["pid"] for s in spans}) == 4  # four processes, one trace
    mission = next(s for s in spans if s["name"] == "orchestrator.mission")
    assert mission["attributes"]["coditect.mission_id"] == mission_id
    tasks = sorted(s["attributes"]["coditect.task_id"] for s in spans if s["name"] == "worker.task")
    assert tasks == ["t1", "t2", "t3", "t4"]
    # The worker's log lines carry the same trace id (structlog JSON lines).
    worker_log = next(p for p in cluster.procs if p.name == "w1").text()
    assert f'"trace_id": "{trace_id}"' in worker_log, worker_log[-2000:]

    # --- every service's /metrics reports the mission's tasks --------------------------------
    tq = _scrape(ports["taskqueue"])
    assert _total(tq, "coditect_task_state_changes_total", state="pending") == 4
    assert _total(tq, "coditect_task_state_changes_total", state="running") >= 4
    assert _total(tq, "coditect_task_state_changes_total", state="complete") == 4
    # The per-state gauge counts every task in Redis (the session's Redis is shared).
    assert _total(tq, "coditect_tasks", state="complete") >= 4

    def worker_done() -> bool:
        w = _scrape(ports["w1"])
        return _total(w, "coditect_worker_tasks_total", outcome="acked") == 4

    _eventually(worker_done, "4 acked tasks on the worker's /metrics", cluster.logs)
    w = _scrape(ports["w1"])
    assert _total(w, "coditect_lease_latency_seconds_count") == 4
    assert _total(w, "coditect_worker_task_duration_seconds_count") == 4
    assert _total(w, "coditect_llm_requests_total") >= 1
    assert _total(w, "coditect_sandbox_runs_total", backend="subprocess", outcome="ok") >= 1

    orch = _scrape(ports["orchestrator"])
    assert _total(orch, "coditect_missions_total", status="SUCCESS") == 1
    assert _total(orch, "coditect_missions_running") == 0
    assert _total(orch, "coditect_llm_requests_total") >= 1  # the planner
