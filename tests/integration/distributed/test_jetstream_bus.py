"""JetStreamBus on a real nats-server: de-duplication, replay, retention, failures."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import nats
import pytest
from _distributed_helpers import eventually, take

from coditect.bus.jetstream import BusError, BusUnavailableError, JetStreamBus, JetStreamConfig
from coditect.domain.events import AgentThink, TaskState
from coditect.domain.tasks import GoalState


@pytest.fixture
async def bus(nats_url: str, events_config: JetStreamConfig):
    b = await JetStreamBus.connect(nats_url, config=events_config, max_wait_s=5)
    try:
        yield b
    finally:
        await b.close()


def think(text: str) -> AgentThink:
    return AgentThink(mission_id="m1", text=text)


async def test_event_subject_is_prefix_and_type(bus: JetStreamBus) -> None:
    assert bus.subject_for("agent.think") == f"{bus.config.subject_prefix}.agent.think"


async def test_republished_event_id_is_stored_once(bus: JetStreamBus) -> None:
    event = think("once")
    first = await bus.append(event)
    again = await bus.append(event)
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq
    assert [e async for e in bus.replay()] == [event]


async def test_replay_from_sequence_and_by_pattern(bus: JetStreamBus) -> None:
    sent = [
        think("a"),
        TaskState(mission_id="m1", task_id="t", state=GoalState.RUNNING),
        think("b"),
    ]
    seqs = [(await bus.append(e)).seq for e in sent]
    assert [e async for e in bus.replay()] == sent
    assert [e async for e in bus.replay(from_seq=seqs[1])] == sent[1:]
    assert [e async for e in bus.replay("agent.*")] == [sent[0], sent[2]]
    assert [e async for e in bus.replay("task.>", from_seq=seqs[2])] == []
    assert [e async for e in bus.replay("mission.*")] == []


async def test_replay_since_a_time(bus: JetStreamBus) -> None:
    await bus.publish(think("old"))
    await asyncio.sleep(0.01)  # the server's timestamps have nanosecond resolution
    since = datetime.now(UTC)
    newer = [think("new1"), think("new2")]
    for e in newer:
        await bus.publish(e)
    assert [e async for e in bus.replay(since=since)] == newer


async def test_replay_rejects_two_starting_points(bus: JetStreamBus) -> None:
    with pytest.raises(ValueError, match="not both"):
        bus.replay(from_seq=1, since=datetime.now(UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        bus.replay(since=datetime.now())


async def test_foreign_messages_on_event_subjects_are_skipped(
    nats_url: str, bus: JetStreamBus
) -> None:
    live = bus.subscribe(">")
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(bus.subject_for("agent.think"), b"not an event")
    await nc.close()
    event = think("real")
    await bus.publish(event)
    assert await take(live, 1) == [event]
    assert [e async for e in bus.replay()] == [event]


async def test_live_subscription_and_replay_see_the_same_events(bus: JetStreamBus) -> None:
    live = bus.subscribe("agent.>")
    sent = [think(str(i)) for i in range(20)]
    for e in sent:
        await bus.publish(e)
    assert await take(live, 20) == sent
    assert [e async for e in bus.replay("agent.>")] == sent


async def test_events_expire_after_max_age(nats_url: str, events_config: JetStreamConfig) -> None:
    config = events_config.model_copy(update={"max_age_s": 0.5})
    bus = await JetStreamBus.connect(nats_url, config=config, max_wait_s=5)
    try:
        await bus.publish(think("short-lived"))
        assert len([e async for e in bus.replay()]) == 1

        async def expired() -> bool:
            return [e async for e in bus.replay()] == []

        await eventually(expired, timeout_s=5)
    finally:
        await bus.close()


async def test_connect_updates_an_existing_stream(nats_url: str, events_config: JetStreamConfig):
    first = await JetStreamBus.connect(nats_url, config=events_config, max_wait_s=5)
    await first.publish(think("kept"))
    changed = events_config.model_copy(update={"max_age_s": 3600.0})
    second = await JetStreamBus.connect(nats_url, config=changed, max_wait_s=5)
    try:
        nc = await nats.connect(nats_url)
        info = await nc.jetstream().stream_info(events_config.stream)
        await nc.close()
        assert info.config.max_age == 3600.0
        assert [e.text async for e in second.replay()] == ["kept"]  # type: ignore[union-attr]
    finally:
        await first.close()
        await second.close()


async def test_publish_fails_after_retries_when_the_stream_is_gone(bus: JetStreamBus) -> None:
    nc = await nats.connect(bus._nc.connected_url.geturl())  # type: ignore[union-attr]
    await nc.jetstream().delete_stream(bus.config.stream)
    await nc.close()
    with pytest.raises(BusError) as err:
        await bus.publish(think("lost"))
    assert err.value.retryable
    assert "3 tries" in str(err.value)


async def test_publish_after_close_is_an_error(bus: JetStreamBus) -> None:
    await bus.close()
    with pytest.raises(BusError, match="closed"):
        await bus.publish(think("late"))


async def test_connect_to_nothing_fails_fast_with_a_hint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    url = f"nats://127.0.0.1:{port}"
    with pytest.raises(BusUnavailableError) as err:
        await JetStreamBus.connect(url, connect_timeout_s=0.2, max_wait_s=0.5)
    assert err.value.retryable
    assert f"is nats-server running at {url}?" in str(err.value)


async def test_connect_to_a_silent_server_is_bounded() -> None:
    # A listener that accepts but never speaks NATS: the handshake must time out.
    writers: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(BusUnavailableError):
            await JetStreamBus.connect(
                f"nats://127.0.0.1:{port}", connect_timeout_s=0.2, max_wait_s=0.6
            )
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_subscribing_to_a_missing_stream_raises_a_bus_error(bus: JetStreamBus) -> None:
    nc = await nats.connect(bus._nc.connected_url.geturl())  # type: ignore[union-attr]
    await nc.jetstream().delete_stream(bus.config.stream)
    await nc.close()
    with pytest.raises(BusError, match="subscription"):
        await anext(bus.replay())


async def test_a_durable_follower_gets_what_was_published_while_it_was_away(
    bus: JetStreamBus,
) -> None:
    first = bus.follow_durable("agent.>", "keeper", ack_wait_s=1.0)
    pending = asyncio.ensure_future(anext(first))  # creates the consumer: events from now on

    async def consumer_made() -> bool:
        try:
            await bus._js.consumer_info(bus.config.stream, "keeper")
        except nats.js.errors.NotFoundError:
            return False
        return True

    await eventually(consumer_made)
    await bus.publish(think("a"))
    seen = [await asyncio.wait_for(pending, 5)]
    await first.aclose()  # "a" was not acknowledged: the next one asked for acks it
    await bus.publish(think("b"))  # nobody follows now
    await bus.publish(TaskState(mission_id="m1", task_id="t", state=GoalState.RUNNING))
    again = bus.follow_durable("agent.>", "keeper", ack_wait_s=1.0)
    seen += await take(again, 2, timeout_s=5)
    await again.aclose()
    # "a" again (its handling was cut short; after ack_wait), and "b", sent while no one followed.
    assert sorted(e.text for e in seen) == ["a", "a", "b"]
