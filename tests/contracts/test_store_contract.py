"""The same tests for every MissionStore / FileIndexStore backend: SQLite and PostgreSQL.

The PostgreSQL runs use a database of their own per test (``fresh_postgres_url``), on the
session's server from tests/infra/pg.py.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from coditect.domain import (
    AgentThink,
    FileRecord,
    GoalState,
    MissionOutcome,
    MissionReport,
    TaskState,
)
from coditect.errors import InputError
from coditect.state.sql import SqlStore, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "state.db")
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    s = SqlStore(url)
    yield s
    await s.close()


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
async def file_index(request, tmp_path):
    """Every FileIndexStore: the SQL store on both databases, and the Redis one."""
    if request.param == "redis":
        from coditect.state.redis_world import RedisFileIndexStore, connect_redis

        client = await connect_redis(request.getfixturevalue("redis_url"), max_wait_s=3)
        yield RedisFileIndexStore(client, prefix="t" + uuid.uuid4().hex[:10])
        await client.aclose()
        return
    store = await request.getfixturevalue("store_factory")(request.param)
    yield store
    await store.close()


@pytest.fixture
def store_factory(request, tmp_path):
    async def make(kind):
        if kind == "sqlite":
            return SqlStore(sqlite_url(tmp_path / "index.db"))
        return SqlStore(request.getfixturevalue("fresh_postgres_url"))

    return make


def report(mid, minutes=0, status=MissionOutcome.SUCCESS):
    return MissionReport(
        mission_id=mid,
        request=f"req {mid}",
        repo="/r",
        status=status,
        started_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )


async def test_reports_upsert_list_and_prefix(store):
    await store.save_report(report("m-aaa-1", 0, MissionOutcome.RUNNING))
    await store.save_report(report("m-aaa-1", 0, MissionOutcome.SUCCESS))
    await store.save_report(report("m-bbb-2", 5))
    assert [r.mission_id for r in await store.list_reports()] == ["m-bbb-2", "m-aaa-1"]
    assert (await store.get_report("m-aaa-1")).status is MissionOutcome.SUCCESS
    assert (await store.get_report("m-bb")).mission_id == "m-bbb-2"
    assert await store.get_report("nope") is None
    with pytest.raises(InputError, match="ambiguous"):
        await store.get_report("m-")
    assert len(await store.list_reports(limit=1)) == 1


async def test_events_keep_order_type_and_ignore_duplicates(store):
    e1 = AgentThink(mission_id="m1", text="a")
    e2 = TaskState(mission_id="m1", task_id="t", state=GoalState.COMPLETE)
    await store.append_events([e1, e2])
    await store.append_events([e1])
    await store.append_events([])
    await store.append_events([AgentThink(mission_id="m2", text="other")])
    assert await store.list_events("m1") == [e1, e2]


async def test_events_after_a_position_resume_without_gaps_or_repeats(store):
    sent = [AgentThink(mission_id="m1", text=str(i)) for i in range(4)]
    await store.append_events(sent[:2])
    await store.append_events([AgentThink(mission_id="m2", text="other")])
    first = await store.events_after("m1")
    assert [e for _, e in first] == sent[:2]
    await store.append_events(sent[2:])
    rest = await store.events_after("m1", first[-1][0])
    assert [e for _, e in rest] == sent[2:]
    positions = [seq for seq, _ in first + rest]
    assert positions == sorted(set(positions))
    assert await store.events_after("m1", positions[-1]) == []


async def test_file_index_replace(file_index):
    recs = [FileRecord(path="a.py", size=1, mtime_ns=2, sha256="x" * 64)]
    await file_index.save_file_index("root", recs)
    await file_index.save_file_index(
        "root", recs + [FileRecord(path="b.py", size=1, mtime_ns=2, sha256="y" * 64)]
    )
    assert {r.path for r in await file_index.load_file_index("root")} == {"a.py", "b.py"}
    assert await file_index.load_file_index("other") == []


async def test_persists_across_store_instances(tmp_path):
    url = sqlite_url(tmp_path / "s.db")
    s1 = SqlStore(url)
    await s1.save_report(report("m-1"))
    await s1.close()
    s2 = SqlStore(url)
    assert (await s2.get_report("m-1")).request == "req m-1"
    await s2.close()
