"""Every Redis key the task queue writes for a mission expires after the state retention."""

from __future__ import annotations

from types import SimpleNamespace

from _distributed_helpers import unique

from coditect.domain.actions import FileRecord
from coditect.runtime.distributed import build_taskqueue_service

RETENTION_S = 3600


async def test_task_queue_writes_set_the_retention_on_every_mission_key(redis_client) -> None:
    prefix = unique("p")
    # These calls do not touch the work queue (no lease ids): Redis is all they need.
    queue = SimpleNamespace(config=SimpleNamespace(consumer_prefix="w"))
    service, _ = build_taskqueue_service(
        queue,  # type: ignore[arg-type]
        redis_client,
        prefix=prefix,
        state_retention_s=RETENTION_S,
    )
    mission = unique("m")
    record = FileRecord(path="a.py", size=1, mtime_ns=1, sha256="0" * 64)
    await service.complete(mission, "t1", worker="w", outcome_json="{}", attempt=0, files=[record])
    await service.put_checkpoint(mission, '{"tasks": []}')
    await service.cancel_tasks(mission, "stop")
    keys = [
        f"{prefix}:{kind}:{{{mission}}}"
        for kind in ("tasks", "results", "files", "checkpoint", "cancel")
    ]
    for key in keys:
        assert 0 < await redis_client.pttl(key) <= RETENTION_S * 1000, key
