"""The ``docker`` sandbox: one throw-away container per command, through the Docker SDK.

The container has no network (``network_disabled``), a read-only root filesystem, a small
``/tmp`` tmpfs, no capabilities, ``no-new-privileges``, a memory limit (cgroup, swap included), a
CPU share, a pids limit and rlimits for CPU seconds and file size. The project is bind-mounted at
``/work``, the only writable path. The wall-clock timeout kills the container; it is always
removed afterwards.

``python`` runs in ``python:3.12-slim`` by default (``node``/``npm``/``npx`` in a Node image).
Those images carry no pytest, so the host's pure-Python pytest packages are mounted read-only at
``/opt/coditect/site`` and put on ``PYTHONPATH``.

The container runs as the owner of the project directory, so files it creates belong to that
user. When that owner is root, it runs as an unprivileged uid instead and the project is lent to
that uid for the run (see :func:`coditect.sandbox.bwrap.project_lent_to`).

The engine must run on this machine (bind mounts are host paths). The Docker SDK is an optional
dependency, imported on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
import signal
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from coditect.errors import SandboxError, SandboxUnavailableError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult
from coditect.sandbox.bwrap import project_lent_to

__all__ = ["DockerSandbox", "container_options"]

_PIP_HINT = "pip install docker"
_ENGINE_HINT = "install Docker and start its engine (dockerd), or choose another --sandbox"
_SITE_DEST = "/opt/coditect/site"
_STDIN_DEST = "/opt/coditect/stdin"
_NODE_PROGRAMS = frozenset({"node", "npm", "npx"})
# Pure-Python packages pytest needs, mounted from the host into images that lack pytest.
_PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py")
_TRUNCATED = "[... output truncated by the sandbox: the last {n} bytes follow]\n"
_SIGNALS = frozenset(int(s) for s in signal.Signals)


class DockerSandbox(Sandbox):
    """Runs each command in a fresh, network-less container.

    Args:
        image: Image for Python and other commands.
        node_image: Image for ``node``, ``npm`` and ``npx``.
        cpus: CPU share of the container (``1.0`` = one core).
        base_url: Docker engine address; defaults to the environment (``DOCKER_HOST``).
        ping_timeout_s: How long :meth:`available` and the first connection wait for the engine.
        fallback_uid: Container uid when the project belongs to root.
    """

    name = "docker"

    def __init__(
        self,
        *,
        image: str = "python:3.12-slim",
        node_image: str = "node:22-slim",
        cpus: float = 1.0,
        base_url: str | None = None,
        ping_timeout_s: float = 2.0,
        fallback_uid: int = 65534,
    ) -> None:
        self._image = image
        self._node_image = node_image
        self._cpus = cpus
        self._base_url = base_url
        self._ping_timeout_s = ping_timeout_s
        self._fallback_uid = fallback_uid
        self._client: Any = None

    @staticmethod
    def available() -> bool:
        """Whether the Docker SDK is installed and an engine answers a ping within 2 s."""
        try:
            _connect(None, 2.0).close()
        except SandboxUnavailableError:
            return False
        return True

    def image_for(self, argv: tuple[str, ...]) -> str:
        """The image that runs ``argv``."""
        return self._node_image if argv[0] in _NODE_PROGRAMS else self._image

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` in a new container; see the module docstring.

        Raises:
            SandboxUnavailableError: The SDK is missing, the engine does not answer, or the
                image is not there and cannot be pulled.
            SandboxError: The project directory is unusable or the engine refused the container.
        """
        workdir = _check_workdir(request.workdir)
        if self._client is None:
            self._client = await asyncio.to_thread(_connect, self._base_url, self._ping_timeout_s)
        info = workdir.stat()
        uid, gid = (info.st_uid, info.st_gid) if info.st_uid != 0 else (self._fallback_uid,) * 2
        with tempfile.TemporaryDirectory(prefix="coditect-docker-") as scratch:
            stdin_file = None
            if request.stdin:
                stdin_file = Path(scratch) / "stdin"
                stdin_file.write_bytes(request.stdin)
                stdin_file.chmod(0o644)
                Path(scratch).chmod(0o755)
            options = container_options(
                request,
                workdir=workdir,
                image=self.image_for(request.argv),
                uid=uid,
                gid=gid,
                cpus=self._cpus,
                env=self.clean_env(request.env),
                site=_pytest_mounts(),
                stdin_file=stdin_file,
            )
            async with _lend_if_root(workdir, info.st_uid, uid, gid):
                return await self._run_container(options, request.limits)

    async def _run_container(self, options: dict[str, Any], limits: SandboxLimits) -> SandboxResult:
        errors = _sdk().errors
        try:
            container = await asyncio.to_thread(self._create, options)
        except errors.APIError as exc:
            raise SandboxError(f"the Docker engine refused the container: {exc}") from exc
        started = time.monotonic()
        timed_out = False
        try:
            await asyncio.to_thread(container.start)
            try:
                status = await asyncio.wait_for(
                    asyncio.to_thread(container.wait), timeout=limits.wall_timeout_s
                )
            except TimeoutError:
                timed_out = True
                with contextlib.suppress(errors.APIError):
                    await asyncio.to_thread(container.kill)
                status = await asyncio.to_thread(container.wait)
            duration = time.monotonic() - started
            stdout, stderr = await asyncio.to_thread(_logs, container, limits.max_output_bytes)
            await asyncio.to_thread(container.reload)
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        finally:
            with contextlib.suppress(errors.APIError):
                await asyncio.to_thread(container.remove, force=True)
        return _result(
            self.name,
            int(status.get("StatusCode", -1)),
            stdout,
            stderr,
            duration,
            timed_out=timed_out,
            oom=oom,
            cpu_limit_s=limits.cpu_s,
        )

    def _create(self, options: dict[str, Any]) -> Any:
        errors = _sdk().errors
        try:
            return self._client.containers.create(**options)
        except errors.ImageNotFound:
            try:
                self._client.images.pull(options["image"])
            except errors.APIError as exc:
                raise SandboxUnavailableError(
                    f"image {options['image']} is missing and cannot be pulled",
                    hint=f"docker pull {options['image']}",
                ) from exc
            return self._client.containers.create(**options)


def container_options(
    request: SandboxRequest,
    *,
    workdir: Path,
    image: str,
    uid: int,
    gid: int,
    cpus: float,
    env: Mapping[str, str],
    site: Mapping[str, str],
    stdin_file: Path | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` for ``request`` (pure; no engine needed).

    Args:
        request: The command and its limits.
        workdir: The resolved project directory, mounted read-write at ``/work``.
        image: The image to run.
        uid: Container user id.
        gid: Container group id.
        cpus: CPU share.
        env: The full environment of the command.
        site: Host path -> container path of read-only mounts put on ``PYTHONPATH``.
        stdin_file: A host file fed to the command's standard input.
    """
    limits = request.limits
    types = _sdk().types
    volumes = {str(workdir): {"bind": "/work", "mode": "rw"}}
    volumes.update({source: {"bind": dest, "mode": "ro"} for source, dest in site.items()})
    environment = dict(env)
    if site:
        environment["PYTHONPATH"] = ":".join(
            filter(None, [_SITE_DEST, environment.get("PYTHONPATH", "")])
        )
    command = list(request.argv)
    if stdin_file is not None:
        volumes[str(stdin_file)] = {"bind": _STDIN_DEST, "mode": "ro"}
        command = ["sh", "-c", f'exec "$@" < {_STDIN_DEST}', "sh", *command]
    return {
        "image": image,
        "command": command,
        "working_dir": "/work",
        "user": f"{uid}:{gid}",
        "environment": environment,
        "volumes": volumes,
        "network_disabled": True,
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": limits.max_memory_bytes,
        "memswap_limit": limits.max_memory_bytes,
        "nano_cpus": int(cpus * 1e9),
        "pids_limit": limits.max_processes,
        "ulimits": [
            types.Ulimit(name="cpu", soft=limits.cpu_s, hard=limits.cpu_s + 1),
            types.Ulimit(name="fsize", soft=limits.max_file_bytes, hard=limits.max_file_bytes),
            types.Ulimit(name="core", soft=0, hard=0),
        ],
        "labels": {"coditect.sandbox": "docker"},
        "detach": True,
    }


def _sdk() -> Any:
    try:
        import docker
    except ImportError as exc:
        raise SandboxUnavailableError(
            "the Docker SDK for Python is not installed", hint=_PIP_HINT
        ) from exc
    return docker


def _connect(base_url: str | None, timeout_s: float) -> Any:
    """A client whose engine answered a ping within ``timeout_s``."""
    docker = _sdk()
    url = base_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        raise SandboxUnavailableError(f"no Docker engine: {url} does not exist", hint=_ENGINE_HINT)
    try:
        client = docker.DockerClient(base_url=url, timeout=timeout_s)
        client.ping()
    except Exception as exc:  # DockerException, and requests' own connection errors
        _collect_leaked_sockets()
        raise SandboxUnavailableError(
            f"no Docker engine answers: {exc}", hint=_ENGINE_HINT
        ) from exc
    # The ping was short; later calls may take longer (container.wait() passes its own timeout).
    client.api.timeout = 60
    return client


def _collect_leaked_sockets() -> None:
    """Finalize the socket a failed client constructor leaves behind, without a ResourceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _pytest_mounts() -> dict[str, str]:
    """Host locations of pytest and its pure-Python dependencies -> their container paths."""
    mounts: dict[str, str] = {}
    for name in _PYTEST_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        mounts[str(source)] = f"{_SITE_DEST}/{source.name}"
    return mounts


def _check_workdir(workdir: Path) -> Path:
    resolved = Path(os.path.realpath(workdir))
    if not resolved.is_dir():
        raise SandboxError(f"project directory {workdir} does not exist or is not a directory")
    return resolved


@contextlib.asynccontextmanager
async def _lend_if_root(workdir: Path, owner: int, uid: int, gid: int) -> AsyncIterator[None]:
    if owner != 0 or os.geteuid() != 0:
        yield
        return
    async with project_lent_to(workdir, uid, gid):
        yield


def _logs(container: Any, cap: int) -> tuple[str, str]:
    return (
        _tail(container.logs(stdout=True, stderr=False), cap),
        _tail(container.logs(stdout=False, stderr=True), cap),
    )


def _tail(data: bytes, cap: int) -> str:
    if len(data) <= cap:
        return data.decode(errors="replace")
    return _TRUNCATED.format(n=cap) + data[-cap:].decode(errors="replace")


def _result(
    backend: str,
    status_code: int,
    stdout: str,
    stderr: str,
    duration_s: float,
    *,
    timed_out: bool,
    oom: bool,
    cpu_limit_s: int,
) -> SandboxResult:
    code, killed_by = status_code, ""
    if status_code > 128 and status_code - 128 in _SIGNALS:
        code = 128 - status_code  # the engine reports signal N as 128 + N
        killed_by = "signal"
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and duration_s >= cpu_limit_s):
            killed_by = "cpu"
    if oom:
        killed_by = "memory"
    if timed_out:
        code, killed_by = -signal.SIGKILL, "timeout"
    return SandboxResult(
        exit_code=code,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration_s,
        timed_out=timed_out,
        killed_by=killed_by,
        backend=backend,
    )
