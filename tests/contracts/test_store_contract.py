"""The same tests for every MissionStore / FileIndexStore backend."""

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


@pytest.fixture(params=["sqlite"])
async def store(request, tmp_path):
    s = SqlStore(sqlite_url(tmp_path / "state.db"))
    yield s
    await s.close()


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


async def test_file_index_replace(store):
    recs = [FileRecord(path="a.py", size=1, mtime_ns=2, sha256="x" * 64)]
    await store.save_file_index("root", recs)
    await store.save_file_index(
        "root", recs + [FileRecord(path="b.py", size=1, mtime_ns=2, sha256="y" * 64)]
    )
    assert {r.path for r in await store.load_file_index("root")} == {"a.py", "b.py"}
    assert await store.load_file_index("other") == []


async def test_persists_across_store_instances(tmp_path):
    url = sqlite_url(tmp_path / "s.db")
    s1 = SqlStore(url)
    await s1.save_report(report("m-1"))
    await s1.close()
    s2 = SqlStore(url)
    assert (await s2.get_report("m-1")).request == "req m-1"
    await s2.close()
