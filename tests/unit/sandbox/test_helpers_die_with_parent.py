"""Helper processes CODITECT starts die with it and obey SIGTERM (real processes, real signals).

Found: after SIGKILL of a mission using the wasm sandbox, ``_wasm_runner.py --serve`` was
re-parented to pid 1 and alive 25 minutes later (its guest was in a long ``time.sleep``, so it
never read the closed socket), and SIGTERM did not stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from coditect.sandbox.wasm import WasmSandbox

SLEEPING_GUEST = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from coditect.sandbox.base import SandboxLimits, SandboxRequest
    from coditect.sandbox.wasm import WasmSandbox

    async def main():
        request = SandboxRequest(
            argv=("python", "-c", "import time; print('in', flush=True); time.sleep(900)"),
            workdir=Path(sys.argv[1]),
            limits=SandboxLimits(wall_timeout_s=900, cpu_s=900),
        )
        await WasmSandbox().run(request)

    asyncio.run(main())
    """
)
SPAWNING = textwrap.dedent(
    """
    import sys, time
    from coditect.sandbox.spawner import Spawner

    spawner = Spawner()
    pid = spawner.spawn(["sleep", "900"], env={"PATH": "/usr/bin:/bin"}, fds=[0, 1, 2],
                        on_exit=lambda code: None)
    print(pid, spawner._helper.pid, flush=True)
    time.sleep(900)
    """
)


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for its new parent to reap it counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")


def wait_gone(pids: list[int], *, attempts: int = 100) -> list[int]:
    for _ in range(attempts):
        alive = [p for p in pids if not gone(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def children_running(parent: int, needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rfind(b")") + 2 :].split()[1]) == parent and needle in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not WasmSandbox.available(), reason="the wasm sandbox is not installed")
def test_a_busy_wasm_worker_dies_with_its_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", SLEEPING_GUEST, str(tmp_path)])
    try:
        workers: list[int] = []
        for _ in range(600):  # the first run may compile the interpreter
            workers = children_running(parent.pid, b"_wasm_runner.py")
            if workers and not gone(workers[0]):
                break
            time.sleep(0.1)
        assert workers, "the wasm worker never started"
        time.sleep(2.0)  # the guest is now inside time.sleep(900)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone(workers) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_wasm_worker_obeys_sigterm_even_when_started_with_it_blocked():
    from coditect.sandbox._wasm_pool import WorkerPool

    runner = Path(__file__).resolve().parents[3] / "src/coditect/sandbox/_wasm_runner.py"
    pool = WorkerPool([sys.executable, "-I", str(runner), "--serve", "{}"], {})
    started = []

    def spawn_with_sigterm_blocked() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        started.append(pool.spawn())

    thread = threading.Thread(target=spawn_with_sigterm_blocked)
    thread.start()
    thread.join()
    (worker,) = started
    time.sleep(0.5)
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.reap() == -signal.SIGTERM
    worker.sock.close()


def test_the_spawn_helper_and_its_commands_die_with_their_parent():
    parent = subprocess.Popen([sys.executable, "-c", SPAWNING], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        command, helper = (int(x) for x in parent.stdout.readline().split())
        assert not gone(command) and not gone(helper)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone([helper, command]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_the_spawn_helper_obeys_sigterm_and_kills_its_commands():
    from coditect.sandbox.spawner import Spawner

    spawner = Spawner()
    ended = threading.Event()
    command = spawner.spawn(
        ["sleep", "900"],
        env={"PATH": "/usr/bin:/bin"},
        fds=[0, 1, 2],
        on_exit=lambda _: ended.set(),
    )
    assert spawner._helper is not None
    helper = spawner._helper.pid
    os.kill(helper, signal.SIGTERM)
    assert ended.wait(10)
    assert wait_gone([command]) == []
    spawner.close()
