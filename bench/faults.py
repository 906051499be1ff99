"""Distributed fault benchmark: kill -9 the processes of running missions, N times.

Usage: python bench/faults.py [--n 20] [--seed 12]

Starts its own nats-server and redis-server on free ports, a fresh PostgreSQL database (as
the tests find one: tests/infra/pg.py), and the distributed mode as real processes (task
queue, orchestrator, two workers; scripted model). Then runs ``--n`` missions one after
another with ``coditect submit --watch``, killing in each one process, the kinds in turn
(worker, task queue, orchestrator), at a random point (seeded), and starting it again
(tests/infra/faults.py). Prints one JSON object:

* ``kills``: processes killed (one per mission);
* ``missions_succeeded``: missions that ended SUCCESS with their watcher following them to the
  end;
* ``duplicates``: task changes applied more than once on the mission branches;
* ``events_lost``: events missing from the stored histories (agent events published but not
  kept, task or mission ends not stored) or from what the watchers printed;
* ``leftovers``: processes of the run alive, and ``coditect-*`` temporary directories left,
  once the cluster has stopped;
* ``median_recovery_s``: median, over the worker kills, of the time from the kill to the
  killed task's next event (it runs again on a worker); ``median_recovery_s_by_kind`` the same
  per kind (task queue and orchestrator: to the mission's next task or mission state, their
  restart included).

Progress and each mission's problems go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import fresh_repo, servers  # noqa: E402

from infra.cluster import cluster_env  # noqa: E402
from infra.faults import KINDS, FaultRun, summary  # noqa: E402
from infra.pg import postgres_database  # noqa: E402


def note(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def _missing(reason: str) -> None:
    raise SystemExit(f"bench/faults.py needs PostgreSQL: {reason}")


def main() -> None:
    """Run the fault missions and print the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="kills (one per mission)")
    parser.add_argument("--seed", type=int, default=12, help="seeds the kill points")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as raw:
        tmp = Path(raw)
        with servers(tmp) as (nats_url, redis_url), postgres_database(_missing) as pg_url:
            env = cluster_env(tmp, nats_url=nats_url, redis_url=redis_url, postgres_url=pg_url)
            run = FaultRun(tmp, env, fresh_repo(tmp), seed=args.seed)
            verdicts = []
            try:
                run.start()
                for i in range(args.n):
                    kind = KINDS[i % len(KINDS)]
                    v = run.mission(kind)
                    verdicts.append(v)
                    note(
                        f"{i + 1}/{args.n} killed {kind}: {'ok' if v.succeeded else 'FAILED'}, "
                        f"recovery {v.recovery_s}s {'; '.join(v.problems)}"
                    )
            finally:
                run.stop()
            leftovers = run.leftovers()
            for item in leftovers:
                note(f"left over: {item}")
    print(json.dumps(summary(verdicts, leftovers)))


if __name__ == "__main__":
    main()
