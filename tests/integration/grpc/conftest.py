"""Fixtures for the gRPC API tests: real servers on free ports, certificates made per session."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from coditect.api.devcerts import DevCerts, make_dev_certs

#: The bearer token the services of these tests require (the test modules use the same value).
TOKEN = "tok"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("infra.servers")


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> DevCerts:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def queue_name() -> str:
    """Stream names of this test only (the NATS server is shared by the session)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def redis_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Redis settings of the distributed services: the private server, or the 3-node cluster.

    A single server unless a test asks for the cluster with
    ``@pytest.mark.parametrize("redis_settings", ["single", "cluster"], indirect=True)``;
    the cluster is started only when a test uses it.
    """
    kind = getattr(request, "param", "single")
    if kind == "single":
        return {"redis_url": request.getfixturevalue("redis_url")}
    if kind != "cluster":
        raise ValueError(f"redis_settings: unknown kind {kind!r}, use 'single' or 'cluster'")
    nodes = request.getfixturevalue("redis_cluster_nodes")
    return {
        "redis_cluster": ",".join(f"{host}:{port}" for host, port in nodes),
        # Nothing listens on port 1: a service that used the URL instead of the cluster fails.
        "redis_url": "redis://127.0.0.1:1/0",
    }


@pytest.fixture
def service_settings(
    tmp_path, nats_url, redis_settings, postgres_url, queue_name
) -> dict[str, Any]:
    """Settings every service of one test shares: this test's streams, Redis and database."""
    return {
        "home": tmp_path / "home",
        "nats_url": nats_url,
        **redis_settings,
        "db_url": postgres_url,
        "token": TOKEN,
        "queue_name": queue_name,
        "connect_wait_s": 3.0,
        # Long enough that a loaded CI machine does not redeliver a task that is still running
        # (redelivery itself is covered by the kill -9 test in tests/e2e/test_distributed.py).
        "ack_wait_s": 10.0,
        # Not the 7-day default, so a test can tell the setting reached every Redis write.
        "state_retention_s": 3600.0,
        "llm": "scripted:fibonacci",
        "sandbox": "subprocess",
    }
