"""The web view's parts without a server: graph layout, page texts, the event feed, the command."""

import asyncio

import pytest
from typer.testing import CliRunner

from coditect.bus.memory import MemoryBus
from coditect.cli.main import app
from coditect.domain.events import AgentAct, AgentLearn, MissionState, TaskState
from coditect.domain.mission import TaskRun
from coditect.domain.tasks import GoalState, Intent
from coditect.ui import render
from coditect.ui.feed import EventFeed
from coditect.ui.graph import layout, render_svg


def test_layout_puts_repair_rounds_after_what_they_replace(report_factory):
    placed = {p.task.id: (p.column, p.row) for p in layout(report_factory().tasks)}
    assert placed == {
        "t1": (0, 0),
        "t2": (1, 0),
        "t3": (2, 0),
        "repair1": (2, 1),
        "retest1": (3, 0),
    }


def test_graph_survives_a_cycle_and_unknown_dependencies():
    tasks = [
        TaskRun(id="a", intent=Intent.ANALYZE, depends_on=["b", "ghost"]),
        TaskRun(id="b", intent=Intent.WRITE_CODE, depends_on=["a"]),
    ]
    svg = render_svg(tasks)
    assert svg.count('class="node') == 2
    assert "no plan yet" in render_svg([])


def test_event_texts_and_costs_without_a_ledger(report_factory):
    assert render.event_text(AgentLearn(mission_id="m", lesson="use a loop")) == "use a loop"
    failed = AgentAct(mission_id="m", action="generate", ok=False, detail="bad")
    assert render.event_text(failed) == "generate (failed): bad"
    state = TaskState(mission_id="m", task_id="t", state=GoalState.FAILED, attempt=2, error="boom")
    assert render.event_text(state) == "failed (attempt 2): boom"
    assert render.event_text(MissionState(mission_id="m", state=GoalState.FAILED, reason="x")) == (
        "mission failed: x"
    )
    costs = render.costs(report_factory(), [])
    assert not costs.from_ledger and costs.agents["coder"]["input_tokens"] == 300
    assert [t["task"] for t in costs.tasks][:2] == ["t1", "t2"]
    assert render.diff_html("") == ""


async def test_feed_merges_bus_and_store_without_duplicates(source):
    bus = MemoryBus()
    feed = EventFeed(source, bus, poll_s=0.02)
    only_on_bus = AgentAct(mission_id="m-f", task_id="t1", agent="coder@w1", action="generate")
    both = TaskState(mission_id="m-f", task_id="t1", state=GoalState.RUNNING)
    other = TaskState(mission_id="m-other", task_id="t1", state=GoalState.RUNNING)
    end = MissionState(mission_id="m-f", state=GoalState.COMPLETE)
    got = []

    async def read():
        async for item in feed.follow("m-f"):
            got.append(item)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.05)
    for event in (only_on_bus, both, other):
        await bus.publish(event)
    await source.store.append_events([both])
    await asyncio.sleep(0.05)
    await source.store.append_events([end])
    await asyncio.wait_for(reader, 10)
    ids = [i.event.event_id for i in got]
    assert sorted(ids) == sorted([only_on_bus.event_id, both.event_id, end.event_id])
    assert ids[-1] == end.event_id and got[-1].seq > 0
    assert next(i.seq for i in got if i.event.event_id == only_on_bus.event_id) == 0


async def test_feed_of_an_ended_mission_ends_after_replay(source, events_factory):
    await source.store.append_events(events_factory("m-old"))
    items = [i async for i in EventFeed(source).follow("m-old")]
    assert len(items) == 5
    assert [i async for i in EventFeed(source).follow("m-old", after_seq=items[-1].seq)] == []


def test_ui_command_refuses_a_public_address_without_token(monkeypatch):
    monkeypatch.delenv("CODITECT_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["ui", "--listen", "0.0.0.0:8421"])
    assert result.exit_code == 2 and "needs a token" in result.output
    bad = CliRunner().invoke(app, ["ui", "--listen", "localhost"])
    assert bad.exit_code == 2 and "HOST:PORT" in bad.output


async def test_distributed_database_gives_a_read_only_view(tmp_path):
    from coditect.cli.ui_cmd import build_state

    url = f"sqlite:///{tmp_path / 'distributed.db'}"
    async with build_state(listen_host="127.0.0.1", token="", db=url, nats=None) as state:
        assert state.launcher is None and state.source.url == url
        assert (await state.source.page()).total == 0


async def test_nats_events_reach_the_feed(nats_url, tmp_path):
    from coditect.cli.ui_cmd import build_state

    url = f"sqlite:///{tmp_path / 'd.db'}"
    async with build_state(listen_host="127.0.0.1", token="", db=url, nats=nats_url) as state:
        assert type(state.bus).__name__ == "JetStreamBus"
        feed = EventFeed(state.source, state.bus, poll_s=0.05)
        act = AgentAct(mission_id="m-n", task_id="t1", agent="coder@w", action="generate")
        got = []

        async def read():
            async for item in feed.follow("m-n"):
                got.append(item.event.event_id)
                if len(got) == 1:
                    await state.source.store.append_events(
                        [MissionState(mission_id="m-n", state=GoalState.COMPLETE)]
                    )

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        await state.bus.publish(act)
        await asyncio.wait_for(reader, 15)
        assert got[0] == act.event_id and len(got) == 2

        # the page's timeline replays what only JetStream has
        from datetime import timedelta

        from coditect.domain.mission import MissionReport

        started = act.ts - timedelta(seconds=5)
        report = MissionReport(mission_id="m-n", request="r", repo="/x", started_at=started)
        await state.source.store.save_report(report)
        assert [e.event_id for e in await state.history("m-n", started)] == [act.event_id]
        from httpx import ASGITransport, AsyncClient

        from coditect.ui.app import create_app

        transport = ASGITransport(app=create_app(state))
        async with AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = (await client.get("/missions/m-n")).text
        assert "coder@w" in page and "mission complete" in page


@pytest.mark.parametrize("missing", ["starlette", "jinja2"])
def test_missing_extra_names_the_pip_command(monkeypatch, missing):
    import sys

    from coditect.cli import ui_cmd
    from coditect.errors import ConfigError

    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ConfigError) as info:
        ui_cmd._require_ui()
    assert "coditect[ui]" in info.value.hint


async def test_the_list_reads_postgresql_too(postgres_url, report_factory):
    from coditect.ui.source import MissionSource

    source = MissionSource(postgres_url)
    try:
        await source.store.save_report(report_factory("m-pg-1"))
        await source.store.save_report(
            report_factory("m-pg-2", status="FAILED", branch="", reason="tests failed")
        )
        page = await source.page(query="fib")
        rows = {r.mission_id: r for r in page.rows}
        assert rows["m-pg-1"].outcome == "branch coditect/m-pg-1"
        assert rows["m-pg-2"].outcome == "tests failed" and rows["m-pg-2"].tokens == 0
        # the database is shared with other tests: look at this test's missions only
        failed = {r.mission_id for r in (await source.page(status="FAILED", per_page=500)).rows}
        assert "m-pg-2" in failed and "m-pg-1" not in failed
    finally:
        await source.close()


def test_task_views_carry_the_model_answers_in_order(report_factory):
    report = report_factory()
    first = AgentAct(mission_id="m", task_id="t1", action="generate", answer="def f():\n    pass\n")
    second = AgentAct(mission_id="m", task_id="t1", action="generate", answer="def f(): <b>")
    quiet = AgentAct(mission_id="m", task_id="t1", action="write_file", detail="f.py")
    views = {v.run.id: v for v in render.task_views(report, [first, quiet, second])}
    assert views["t1"].answers == ("def f():\n    pass\n", "def f(): <b>")
    assert views["t2"].answers == ()
