"""The spawn helper: commands start without forking CODITECT, and exits are always reported."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from coditect.errors import SandboxError
from coditect.sandbox.base import SandboxLimits
from coditect.sandbox.spawner import ChildSetup, Spawner, SpawnFailedError, run_captured
from coditect.sandbox.subprocess import run_process

ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def spawner():
    spawner = Spawner()
    yield spawner
    spawner.close()


def _pipe_output(
    spawner: Spawner, argv: list[str], setup: ChildSetup | None = None
) -> tuple[int, str]:
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    ended = threading.Event()
    codes: list[int] = []

    def on_exit(code: int) -> None:
        codes.append(code)
        ended.set()

    try:
        spawner.spawn(argv, env=ENV, fds=[null, write, write], setup=setup, on_exit=on_exit)
    finally:
        os.close(write)
        os.close(null)
    with os.fdopen(read) as stream:
        text = stream.read()
    assert ended.wait(10)
    return codes[0], text


def test_runs_a_command_with_the_given_descriptors_and_reports_its_exit(spawner):
    code, out = _pipe_output(spawner, [sys.executable, "-c", "print('hi'); raise SystemExit(3)"])
    assert (code, out) == (3, "hi\n")


def test_a_signal_death_is_a_negative_code(spawner):
    code, _ = _pipe_output(spawner, ["/bin/sh", "-c", "kill -TERM $$"])
    assert code == -signal.SIGTERM


def test_rlimits_session_and_cwd_are_applied_in_the_child(spawner, tmp_path):
    probe = (
        "import os, resource; "
        "print(resource.getrlimit(resource.RLIMIT_FSIZE), os.getsid(0) == os.getpid(), os.getcwd())"
    )
    setup = ChildSetup(rlimits=((resource.RLIMIT_FSIZE, 4096, 4096),))
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    done = threading.Event()
    spawner.spawn(
        [sys.executable, "-c", probe],
        env=ENV,
        fds=[null, write, write],
        cwd=str(tmp_path),
        setup=setup,
        on_exit=lambda _code: done.set(),
    )
    os.close(write)
    os.close(null)
    with os.fdopen(read) as stream:
        assert stream.read().strip() == f"(4096, 4096) True {tmp_path}"
    assert done.wait(10)


def test_only_the_given_descriptors_reach_the_child(spawner):
    secret_read, secret_write = os.pipe()
    try:
        code, out = _pipe_output(
            spawner,
            [
                sys.executable,
                "-c",
                "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))",
            ],
        )
    finally:
        os.close(secret_read)
        os.close(secret_write)
    assert code == 0
    # 0, 1, 2 and the descriptor of the listing itself; nothing of CODITECT's.
    assert len(eval(out)) == 4  # noqa: S307 - our own printed list


def test_a_missing_program_is_a_spawn_error_with_its_errno(spawner):
    with pytest.raises(SpawnFailedError) as caught:
        _pipe_output(spawner, ["/nonexistent/program"])
    assert caught.value.errno == errno.ENOENT
    assert "No such file" in str(caught.value)


def test_a_failing_child_setup_is_a_spawn_error(spawner, tmp_path):
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with pytest.raises(SpawnFailedError, match="No such file"):
            spawner.spawn(
                ["/bin/true"],
                env=ENV,
                fds=[null, null, null],
                cwd=str(tmp_path / "gone"),
                on_exit=print,
            )
    finally:
        os.close(null)


def test_the_helper_is_restarted_after_it_died_and_its_commands_are_reported_killed(spawner):
    ended = threading.Event()
    codes: list[int] = []

    def on_exit(code: int) -> None:
        codes.append(code)
        ended.set()

    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = spawner.spawn(["/bin/sleep", "30"], env=ENV, fds=[null, null, null], on_exit=on_exit)
    finally:
        os.close(null)
    helper = spawner._helper
    assert helper is not None
    helper.kill()
    assert ended.wait(10)
    assert codes == [-signal.SIGKILL]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)
    assert _pipe_output(spawner, ["/bin/echo", "again"]) == (0, "again\n")


def test_closing_the_spawner_kills_what_it_started():
    spawner = Spawner()
    null = os.open(os.devnull, os.O_RDWR)
    ended = threading.Event()
    try:
        pid = spawner.spawn(
            ["/bin/sleep", "30"], env=ENV, fds=[null, null, null], on_exit=lambda _c: ended.set()
        )
    finally:
        os.close(null)
    spawner.close()
    assert ended.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def test_run_captured_kills_a_command_at_its_timeout():
    code, _ = run_captured(["/bin/sleep", "30"], env=ENV, timeout_s=0.5)
    assert code == -signal.SIGKILL


def test_run_process_never_forks_coditects_own_process(tmp_path):
    forks: list[int] = []
    os.register_at_fork(before=lambda: forks.append(1))
    outcome = asyncio.run(
        run_process(
            [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
            cwd=tmp_path,
            env=ENV,
            stdin=b"x" * 200_000,
            limits=SandboxLimits(),
        )
    )
    assert outcome.returncode == 0
    assert outcome.stdout.strip() == "X" * 200_000
    assert forks == []


def test_run_process_reports_a_missing_program_as_a_sandbox_error(tmp_path):
    with pytest.raises(SandboxError, match="cannot start '/nonexistent'"):
        asyncio.run(
            run_process(["/nonexistent"], cwd=tmp_path, env=ENV, stdin=b"", limits=SandboxLimits())
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (reaped later by the helper) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_the_helper_loop_in_process_spawns_reports_exits_and_kills_leftovers(tmp_path):
    """``_spawnd.serve`` run in this process (its own process is not measured by coverage)."""
    import json
    import socket

    from coditect.sandbox import _spawnd

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    replies: list[dict] = []
    null = os.open(os.devnull, os.O_RDWR)

    def client() -> None:
        def ask(request: dict) -> dict:
            socket.send_fds(ours, [json.dumps(request).encode()], [null, null, null])
            while True:
                message = json.loads(ours.recv(1 << 20))
                replies.append(message)
                if message.get("id") == request["id"]:
                    return message

        base = {"env": ENV, "cwd": str(tmp_path), "rlimits": [[resource.RLIMIT_CORE, 0, 0]]}
        ask({"id": 1, "argv": ["/bin/true"], **base})
        ask({"id": 2, "argv": ["/nonexistent/program"], **base})
        ask({"id": 3, "argv": ["/bin/sleep", "30"], **base})
        while not any(m.get("exited") for m in replies):  # the exit of id 1
            replies.append(json.loads(ours.recv(1 << 20)))
        ours.close()  # CODITECT went away: the helper kills `sleep` and returns

    previous = signal.getsignal(signal.SIGCHLD)
    thread = threading.Thread(target=client)
    thread.start()
    try:
        _spawnd.serve(theirs)
    finally:
        signal.signal(signal.SIGCHLD, previous)
        signal.set_wakeup_fd(-1)
        theirs.close()
        os.close(null)
    thread.join(10)
    by_id = {m["id"]: m for m in replies if "id" in m}
    assert "pid" in by_id[1] and "pid" in by_id[3]
    assert by_id[2]["errno"] == errno.ENOENT
    assert {"exited": by_id[1]["pid"], "code": 0} in replies
    sleeper = by_id[3]["pid"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(sleeper):
        time.sleep(0.05)
    assert not _alive(sleeper)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(sleeper, 0)  # the helper loop ran in this process: reap its child here
