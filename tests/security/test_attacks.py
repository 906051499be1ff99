"""Attacks on every sandbox backend, each checked on the host afterwards.

An attack is a Python snippet run as ``python -c``. It prints ``STARTED`` first (so a sandbox that
cannot run anything does not pass by accident), then markers for what it managed to do. Each test
asserts on the host's state (a file that must not exist, a listener that must have received
nothing, a process that must still live) as well as on the markers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult

from .attacklib import (
    SECRET_KEY,
    Host,
    host_resolves,
    over_backends,
    processes_with,
    received_connection,
)

pytestmark = pytest.mark.security

_MIB = 1024 * 1024


async def attack(sandbox: Sandbox, project: Path, code: str, **limits: float) -> SandboxResult:
    """Run ``code`` in ``sandbox`` with short limits; ``STARTED`` is printed first."""
    settings: dict[str, float] = {"wall_timeout_s": 10, "cpu_s": 5}
    settings.update(limits)
    request = SandboxRequest(
        argv=("python", "-c", "print('STARTED', flush=True)\n" + textwrap.dedent(code)),
        workdir=project,
        limits=SandboxLimits(**settings),  # type: ignore[arg-type]
    )
    result = await sandbox.run(request)
    return result


def ran(result: SandboxResult) -> bool:
    return "STARTED" in result.stdout


# -- network ----------------------------------------------------------------------------------


@over_backends("network_connect")
async def test_network_connect_to_host_listener(sandbox, project, listener):
    port = listener.getsockname()[1]
    result = await attack(
        sandbox,
        project,
        f"""
        import socket
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
            s.sendall(b"exfiltrated")
            print("CONNECTED")
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert not received_connection(listener)
    assert "CONNECTED" not in result.stdout


@over_backends("dns_resolve")
async def test_dns_resolve(sandbox, project):
    if not host_resolves("pypi.org"):
        pytest.skip("the host itself cannot resolve names: nothing to prove")
    result = await attack(
        sandbox,
        project,
        """
        import socket
        try:
            print("RESOLVED", socket.getaddrinfo("pypi.org", 443)[0][4])
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert "RESOLVED" not in result.stdout


# -- reading outside the project --------------------------------------------------------------


@over_backends("read_state_dir")
async def test_read_coditect_state_dir(sandbox, project, host: Host):
    result = await attack(
        sandbox,
        project,
        f"""
        import os
        for path in ({str(host.state_dir / "state.db")!r}, {str(host.state_dir)!r}):
            try:
                if os.path.isdir(path):
                    print("LISTED", os.listdir(path))
                else:
                    print("READ", open(path).read())
            except Exception as exc:
                print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert host.state_secret not in result.stdout
    assert "state.db" not in result.stdout


@over_backends("read_etc_passwd")
async def test_read_etc_passwd(sandbox, project):
    result = await attack(
        sandbox,
        project,
        """
        try:
            print(open("/etc/passwd").read())
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert "root:x:0:0" not in result.stdout


@over_backends("read_home")
async def test_read_user_home(sandbox, project):
    home = Path.home()
    # The Python installation (pyenv keeps it under the home) is mounted on purpose.
    python_paths = [Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix)]
    entries = sorted(
        entry.name
        for entry in home.iterdir()
        if len(entry.name) > 3 and not any(entry in (p, *p.parents) for p in python_paths)
    )
    if not entries:
        pytest.skip(f"{home} has no entries to look for")
    result = await attack(
        sandbox,
        project,
        f"""
        import os
        try:
            print("LISTED", os.listdir({str(home)!r}))
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert not any(repr(name) in result.stdout for name in entries)


# -- writing outside the project --------------------------------------------------------------


@over_backends("write_outside")
async def test_write_outside_project(sandbox, project, host: Host):
    targets = [host.fresh_path(), Path(f"/tmp/coditect-pwned-{uuid.uuid4().hex}")]
    try:
        result = await attack(
            sandbox,
            project,
            f"""
            for path in {[str(target) for target in targets]!r}:
                try:
                    open(path, "w").write("pwned")
                    print("WROTE", path)
                except Exception as exc:
                    print("BLOCKED", type(exc).__name__)
        """,
        )
        assert ran(result), result.stderr
        assert [target for target in targets if target.exists()] == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


@over_backends("symlink_read")
async def test_symlink_in_project_pointing_outside_read(sandbox, project, host: Host):
    (project / "innocent.txt").symlink_to(host.state_dir / "state.db")
    (project / "innocent_dir").symlink_to(host.state_dir)
    result = await attack(
        sandbox,
        project,
        """
        import os
        try:
            print("READ", open("innocent.txt").read())
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
        try:
            print("LISTED", os.listdir("innocent_dir"))
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert host.state_secret not in result.stdout
    assert "state.db" not in result.stdout


@over_backends("symlink_write")
async def test_symlink_in_project_pointing_outside_write(sandbox, project, host: Host):
    target = host.fresh_path()
    (project / "out").symlink_to(host.outside_dir)
    (project / "out_file").symlink_to(target)
    try:
        result = await attack(
            sandbox,
            project,
            f"""
            for path in ("out/{target.name}-via-dir", "out_file"):
                try:
                    open(path, "w").write("pwned")
                    print("WROTE", path)
                except Exception as exc:
                    print("BLOCKED", type(exc).__name__)
        """,
        )
        assert ran(result), result.stderr
        assert not target.exists()
        assert not (host.outside_dir / f"{target.name}-via-dir").exists()
    finally:
        target.unlink(missing_ok=True)
        (host.outside_dir / f"{target.name}-via-dir").unlink(missing_ok=True)


@over_backends("remount_readonly")
async def test_remount_readonly_path(sandbox, project):
    target = Path(f"/usr/coditect-pwned-{uuid.uuid4().hex}")
    try:
        result = await attack(
            sandbox,
            project,
            f"""
            import subprocess
            for argv in (["mount", "-o", "remount,rw,bind", "/usr"], ["mount", "-o", "remount,rw", "/"]):
                try:
                    done = subprocess.run(argv, capture_output=True, timeout=3)
                    print("MOUNT", done.returncode)
                except Exception as exc:
                    print("BLOCKED", type(exc).__name__)
            try:
                open({str(target)!r}, "w").write("pwned")
                print("WROTE")
            except Exception as exc:
                print("BLOCKED", type(exc).__name__)
        """,
        )
        assert ran(result), result.stderr
        assert not target.exists()
        assert "WROTE" not in result.stdout
    finally:
        target.unlink(missing_ok=True)


# -- resource exhaustion ----------------------------------------------------------------------


@over_backends("fork_bomb")
async def test_fork_bomb_is_bounded(sandbox, project):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    # Bounded on purpose: at most 120 children, each sleeping 3 s. The limit asked for is 20.
    result = await attack(
        sandbox,
        project,
        f"""
        import os, time
        MARKER = {marker!r}
        started = 0
        try:
            for _ in range(120):
                if os.fork() == 0:
                    time.sleep(3)
                    os._exit(0)
                started += 1
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
        print("FORKED", started, flush=True)
    """,
        max_processes=20,
        wall_timeout_s=8,
    )
    assert ran(result), result.stderr
    forked = [
        int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("FORKED")
    ]
    assert forked and forked[0] < 20
    assert processes_with(marker) == []


@over_backends("memory_bomb")
async def test_memory_bomb_is_refused(sandbox, project):
    result = await attack(
        sandbox,
        project,
        """
        try:
            hog = bytearray(4 * 1024 ** 3)
            print("ALLOCATED", len(hog))
        except MemoryError:
            print("BLOCKED MemoryError")
    """,
        max_memory_bytes=512 * _MIB,
    )
    assert ran(result) or result.killed_by in ("memory", "signal"), result.stderr
    assert "ALLOCATED" not in result.stdout


@over_backends("infinite_loop")
async def test_infinite_loop_is_stopped(sandbox, project):
    result = await attack(
        sandbox,
        project,
        """
        while True:
            pass
        print("FINISHED")
    """,
        cpu_s=1,
        wall_timeout_s=6,
    )
    assert ran(result), result.stderr
    assert "FINISHED" not in result.stdout
    assert result.exit_code != 0
    assert result.killed_by in ("cpu", "timeout", "signal")


@over_backends("sleep_past_timeout")
async def test_sleep_past_wall_timeout(sandbox, project):
    marker = f"sleeper-{uuid.uuid4().hex}"
    result = await attack(
        sandbox,
        project,
        f"""
        import time
        MARKER = {marker!r}
        time.sleep(60)
        print("WOKE")
    """,
        wall_timeout_s=1.5,
    )
    assert result.timed_out
    assert result.killed_by == "timeout"
    assert "WOKE" not in result.stdout
    assert processes_with(marker) == []


@over_backends("fill_disk")
async def test_fill_disk_stops_at_file_size_limit(sandbox, project):
    result = await attack(
        sandbox,
        project,
        """
        import signal
        if hasattr(signal, "SIGXFSZ"):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
        try:
            with open("big.bin", "wb") as out:
                for _ in range(64):
                    out.write(b"x" * (1024 * 1024))
            print("WROTE 64 MiB")
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
        max_file_bytes=2 * _MIB,
    )
    assert ran(result), result.stderr
    assert "WROTE 64 MiB" not in result.stdout
    big = project / "big.bin"
    assert not big.exists() or big.stat().st_size <= 2 * _MIB


# -- secrets and other processes --------------------------------------------------------------


@over_backends("env_secret")
async def test_api_key_not_in_environment(sandbox, project, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    result = await attack(
        sandbox,
        project,
        """
        import os
        print("ENV", dict(os.environ))
        try:
            print("SELF", open("/proc/self/environ", "rb").read())
        except Exception as exc:
            print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr


@over_backends("proc_environ")
async def test_api_key_not_readable_from_other_processes(sandbox, project, victim):
    result = await attack(
        sandbox,
        project,
        """
        import os
        found = []
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except Exception as exc:
            pids = []
            print("BLOCKED", type(exc).__name__)
        for pid in pids:
            try:
                found.append(open(f"/proc/{pid}/environ", "rb").read())
            except Exception:
                pass
        print("ENVIRONS", found)
    """,
    )
    assert ran(result), result.stderr
    assert SECRET_KEY not in result.stdout


@over_backends("kill_host_process")
async def test_signal_host_process(sandbox, project, victim: subprocess.Popen[bytes]):
    result = await attack(
        sandbox,
        project,
        f"""
        import os, signal
        for sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                os.kill({victim.pid}, sig)
                print("SIGNALLED", sig)
            except Exception as exc:
                print("BLOCKED", type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    if "SIGNALLED" in result.stdout:
        # kill(2) returns before the victim is gone: give a delivered SIGKILL time to land.
        with contextlib.suppress(subprocess.TimeoutExpired):
            victim.wait(timeout=2)
    assert victim.poll() is None, "the host process was killed from inside the sandbox"


@over_backends("proc_root_escape")
async def test_escape_through_proc_root(sandbox, project, host: Host, victim):
    secret = str(host.state_dir / "state.db")
    result = await attack(
        sandbox,
        project,
        f"""
        import os
        for pid in ("1", "self", str(os.getppid()), "{victim.pid}"):
            try:
                print("READ", pid, open(f"/proc/{{pid}}/root{secret}").read())
            except Exception as exc:
                print("BLOCKED", pid, type(exc).__name__)
            try:
                print("CWD", pid, os.listdir(f"/proc/{{pid}}/cwd"))
            except Exception as exc:
                print("BLOCKED", pid, type(exc).__name__)
    """,
    )
    assert ran(result), result.stderr
    assert host.state_secret not in result.stdout


# -- the sandbox still does its job -----------------------------------------------------------


@over_backends("project_write")
async def test_project_is_writable_and_result_is_usable_on_host(sandbox, project):
    result = await attack(
        sandbox,
        project,
        """
        import os
        os.makedirs("pkg/sub", exist_ok=True)
        open("pkg/sub/out.txt", "w").write("made in the sandbox")
        print("WROTE")
    """,
    )
    assert "WROTE" in result.stdout, result.stderr
    made = project / "pkg" / "sub" / "out.txt"
    assert made.read_text() == "made in the sandbox"
    owner = project.stat().st_uid
    assert {path.stat().st_uid for path in (made, made.parent, made.parent.parent)} == {owner}
    assert os.access(made, os.W_OK)


def test_listener_helper_sees_a_real_connection(listener):
    # The network attack is only meaningful if the host check can see a connection at all.
    with socket.create_connection(listener.getsockname(), timeout=2):
        pass
    assert received_connection(listener)
