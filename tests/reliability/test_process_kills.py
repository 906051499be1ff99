"""The distributed fault suite: kill -9 each process of a running mission, then judge it.

Real servers (NATS JetStream, Redis, PostgreSQL) and the services as real ``coditect``
processes (tests/infra/cluster.py); the scripted Fibonacci model. For each process kind (a
worker, the task queue, the orchestrator) missions are submitted with ``coditect submit
--watch``; during each, that process is killed at a random point (seeded) and started again.
Every mission must end SUCCESS with each change applied once, no event missing from its
history or from what the watcher printed, and nothing left behind once the cluster stops
(tests/infra/faults.py says exactly what is checked).

``CODITECT_FAULT_KILLS`` sets the kills per kind (default 1, about 2 minutes in all);
``CODITECT_FAULT_SEED`` the seed. bench/faults.py runs the same with 20 kills and prints figures.
"""

from __future__ import annotations

import os

import pytest

from infra.cluster import cluster_env
from infra.faults import KINDS, FaultRun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

KILLS = int(os.environ.get("CODITECT_FAULT_KILLS", "1"))
SEED = int(os.environ.get("CODITECT_FAULT_SEED", "12"))


def test_every_mission_survives_a_killed_process(
    tmp_path, nats_url, redis_url, postgres_url, calculator_repo
):
    env = cluster_env(tmp_path, nats_url=nats_url, redis_url=redis_url, postgres_url=postgres_url)
    run = FaultRun(tmp_path, env, calculator_repo, seed=SEED)
    verdicts = []
    try:
        run.start()
        for kind in KINDS:
            for _ in range(KILLS):
                verdicts.append(run.mission(kind))
    finally:
        run.stop()
    leftovers = run.leftovers()
    bad = [v for v in verdicts if v.problems or v.duplicates or not v.succeeded]
    assert not bad, "\n".join(f"{v.kind} {v.mission_id}: {v.problems}" for v in bad) + (
        "\n" + run.cluster.logs()
    )
    assert not leftovers, leftovers
    assert len(verdicts) == KILLS * len(KINDS)
