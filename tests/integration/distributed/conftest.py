"""Fixtures for the distributed-mode tests: NATS and Redis clients on the private test servers.

The servers themselves come from the ``infra.servers`` plugin (``nats_url``, ``redis_url``,
``redis_cluster_nodes``), loaded here unless ``tests/conftest.py`` already did. Every test uses its own stream names, subjects and Redis keys, so
tests sharing one server cannot see each other's data.
"""

from __future__ import annotations

import pytest
from _distributed_helpers import FAST_PUBLISH, unique

from coditect.bus.jetstream import JetStreamConfig
from coditect.bus.workqueue import WorkQueueConfig
from coditect.state.redis_world import connect_redis


def pytest_configure(config: pytest.Config) -> None:
    # A no-op when tests/conftest.py has pytest_plugins = ["infra.servers"].
    config.pluginmanager.import_plugin("infra.servers")


@pytest.fixture
def events_config() -> JetStreamConfig:
    name = unique()
    return JetStreamConfig(
        stream=name.upper(), subject_prefix=f"{name}.events", storage="memory", publish=FAST_PUBLISH
    )


@pytest.fixture
def queue_config() -> WorkQueueConfig:
    name = unique()
    return WorkQueueConfig(
        stream=f"{name.upper()}_TASKS",
        subject_prefix=f"{name}.tasks",
        dlq_stream=f"{name.upper()}_DLQ",
        dlq_prefix=f"{name}.dlq",
        ack_wait_s=1.0,
        heartbeat_interval_s=0.25,
        max_deliveries=3,
        nak_delay_s=0.0,
        storage="memory",
        publish=FAST_PUBLISH,
    )


@pytest.fixture(params=["single", "cluster"])
async def redis_connect(request: pytest.FixtureRequest):
    """Opens clients of the private Redis server, then of the private 3-node Redis Cluster."""
    clients = []
    if request.param == "single":
        url, nodes = request.getfixturevalue("redis_url"), None
    else:
        url, nodes = None, request.getfixturevalue("redis_cluster_nodes")

    async def connect():
        client = await connect_redis(url, cluster_nodes=nodes, max_wait_s=5)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
async def redis_client(redis_connect):
    """A client of the private Redis server, then of the private 3-node Redis Cluster."""
    return await redis_connect()
