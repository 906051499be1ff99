"""The distributed mode as real processes: ``coditect serve ...`` and ``coditect worker``.

Used by tests/e2e/test_distributed.py, tests/reliability/ and bench/faults.py. Every process
is ``python -m coditect ...`` in a session of its own, with its output in a log file; all share
one environment (token, TLS, backends, queue name) made by :func:`cluster_env`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from coditect.api.clients import ClientOptions
from coditect.api.devcerts import make_dev_certs
from coditect.api.security import TlsConfig

__all__ = ["TOKEN", "Cluster", "Proc", "cluster_env"]

TOKEN = "e2e-token"


class Proc:
    """A ``coditect`` subprocess with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.args = args
        self.log = logdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coditect", *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def text(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        """The first match of ``pattern`` in the output (AssertionError when none in time)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {pattern!r} in time; log:\n{self.text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGKILL after 10 s) and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()
        return self.proc.returncode


class Cluster:
    """Starts the services of one test; all share its env (token, TLS, backends)."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: list[Proc] = []
        self.tq_port = 0
        self.orch_port = 0

    def start(self, name: str, *args: str, **env: str) -> Proc:
        """Any ``coditect`` command as a process of this cluster."""
        proc = Proc(name, list(args), {**self.env, **env}, self.tmp)
        self.procs.append(proc)
        return proc

    def start_taskqueue(self, port: int = 0) -> Proc:
        """``coditect serve taskqueue`` (on ``port``: a restart keeps the address)."""
        tq = self.start("taskqueue", "serve", "taskqueue", "--listen", f"127.0.0.1:{port}")
        self.tq_port = int(tq.wait_for(r"taskqueue listening on [\d.]+:(\d+)").group(1))
        self.env["CODITECT_TASKQUEUE"] = f"127.0.0.1:{self.tq_port}"
        return tq

    def start_orchestrator(self, port: int = 0) -> Proc:
        """``coditect serve orchestrator`` (on ``port``: a restart keeps the address)."""
        orch = self.start("orchestrator", "serve", "orchestrator", "--listen", f"127.0.0.1:{port}")
        self.orch_port = int(orch.wait_for(r"orchestrator listening on [\d.]+:(\d+)").group(1))
        self.env["CODITECT_SERVER"] = f"127.0.0.1:{self.orch_port}"
        return orch

    def start_worker(self, name: str, capabilities: str = "analyze,code,test", **env: str) -> Proc:
        """``coditect worker`` named ``name``."""
        w = self.start(name, "worker", "--capabilities", capabilities, "--worker-id", name, **env)
        w.wait_for("worker .* started")
        return w

    def client_options(self, port: int) -> ClientOptions:
        """Client settings for the service on ``port``."""
        return ClientOptions(
            address=f"127.0.0.1:{port}",
            token=TOKEN,
            tls=TlsConfig(ca=Path(self.env["CODITECT_TLS_CA"])),
        )

    def stop(self) -> None:
        """Stop every process (SIGTERM), newest first."""
        for p in reversed(self.procs):
            p.stop()

    def logs(self) -> str:
        """The tail of every process's output."""
        return "\n".join(f"=== {p.name}\n{p.text()[-2500:]}" for p in self.procs)


def cluster_env(tmp: Path, *, nats_url: str, redis_url: str, postgres_url: str) -> dict[str, str]:
    """The environment of a cluster's processes: private names, TLS, a token, scripted model."""
    certs = make_dev_certs(tmp / "certs")
    return {
        **os.environ,
        "CODITECT_HOME": str(tmp / "home"),
        "CODITECT_NATS_URL": nats_url,
        "CODITECT_REDIS_URL": redis_url,
        "CODITECT_DB_URL": postgres_url,
        "CODITECT_TOKEN": TOKEN,
        # Every process presents the server certificate and trusts the test CA: servers use
        # cert/key, clients verify the other end with the CA.
        "CODITECT_TLS_CERT": str(certs.server_cert),
        "CODITECT_TLS_KEY": str(certs.server_key),
        "CODITECT_TLS_CA": str(certs.ca),
        "CODITECT_QUEUE_NAME": "e2e" + uuid.uuid4().hex[:8],
        "CODITECT_LLM": "scripted:fibonacci",
        "CODITECT_SANDBOX": "subprocess",
        "CODITECT_ACK_WAIT_S": "2",
        "CODITECT_CONNECT_WAIT_S": "5",
        "CODITECT_RPC_RETRIES": "20",
        "CODITECT_MISSION_TIMEOUT_S": "120",
        "PYTHONUNBUFFERED": "1",
    }
