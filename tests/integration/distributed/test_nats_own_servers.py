"""Servers of their own: a nats-server restart, and one without JetStream.

A nats-server restart: publishing fails with a retryable error, then works again, and the
stored events (file storage) are still there. Uses its own server, not the shared one.

A publish that failed may still be stored later (nats-py flushes its buffer after the
reconnect), so the caller retries it with the same event: the event id makes that safe.
"""

from __future__ import annotations

import pytest
from _distributed_helpers import eventually

from coditect.bus.jetstream import (
    BusError,
    BusUnavailableError,
    JetStreamBus,
    JetStreamConfig,
    PublishPolicy,
)
from coditect.bus.workqueue import JetStreamWorkQueue
from coditect.domain.events import AgentThink
from infra.servers import find_binary, start_nats


@pytest.fixture
def binary(nats_url: str) -> str:  # nats_url: skip or fail as the shared server would
    found = find_binary("nats-server")
    assert found is not None
    return found


async def test_bus_survives_a_server_restart(tmp_path, binary: str) -> None:
    server = start_nats(tmp_path, binary)
    url = f"nats://127.0.0.1:{server.port}"
    config = JetStreamConfig(storage="file", publish=PublishPolicy(timeout_s=0.3, attempts=2))
    bus = await JetStreamBus.connect(url, config=config, max_wait_s=5)
    try:
        before = AgentThink(mission_id="m1", text="before")
        await bus.publish(before)
        server.stop()
        lost = AgentThink(mission_id="m1", text="lost")
        with pytest.raises(BusError) as err:
            await bus.publish(lost)
        assert err.value.retryable

        server = start_nats(tmp_path, binary, port=server.port)
        after = AgentThink(mission_id="m1", text="after")

        async def published() -> bool:
            try:
                await bus.publish(lost)  # the caller's retry
            except BusError:
                return False
            return True

        await eventually(published, timeout_s=8)
        await bus.publish(after)
        assert [e async for e in bus.replay()] == [before, lost, after]
    finally:
        await bus.close()
        server.stop()


@pytest.mark.parametrize("cls", [JetStreamBus, JetStreamWorkQueue])
async def test_server_without_jetstream_is_reported(tmp_path, binary: str, cls) -> None:
    server = start_nats(tmp_path, binary, jetstream=False)
    try:
        with pytest.raises(BusUnavailableError, match="nats-server -js"):
            await cls.connect(f"nats://127.0.0.1:{server.port}", max_wait_s=2)
    finally:
        server.stop()
