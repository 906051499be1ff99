"""Fixtures for the gRPC API tests: real servers on free ports, certificates made per session."""

from __future__ import annotations

import uuid

import pytest

from coditect.api.devcerts import DevCerts, make_dev_certs


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
