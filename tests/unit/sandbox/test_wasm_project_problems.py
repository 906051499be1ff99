"""Projects the wasm sandbox cannot present: ``auto`` moves on and says why; ``wasm`` refuses.

Found: a file name that is not UTF-8 failed every mission in the wasm sandbox (``OSError: [Errno
25] Illegal byte sequence``) and a top-level link to outside made pytest collection fail there
(``PermissionError: [Errno 63]``), while the process sandbox ran both projects.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from coditect.errors import SandboxUnavailableError
from coditect.sandbox.base import SandboxRequest
from coditect.sandbox.policy import BackendSpec, PolicySandbox
from coditect.sandbox.subprocess import SubprocessSandbox
from coditect.sandbox.wasm import WasmSandbox, project_problem

PRINT = ("python", "-c", "print('ran')")


class _ProcessStandIn(SubprocessSandbox):
    name = "process"


def registry() -> dict[str, BackendSpec]:
    return {
        "wasm": BackendSpec("wasm", WasmSandbox, lambda: True, "pip install wasmtime"),
        "process": BackendSpec("process", _ProcessStandIn, lambda: True, "bubblewrap"),
    }


def non_utf8(tmp_path: Path) -> Path:
    (tmp_path / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")
    return tmp_path


def link_out(tmp_path: Path) -> Path:
    os.symlink("/etc", tmp_path / "etc")
    return tmp_path


def native_ext(tmp_path: Path) -> Path:
    (tmp_path / ".coditect" / "deps" / "yaml").mkdir(parents=True)
    (
        tmp_path / ".coditect" / "deps" / "yaml" / "_yaml.cpython-311-x86_64-linux-gnu.so"
    ).write_bytes(b"\x7fELF")
    return tmp_path


def test_problems_are_named(tmp_path):
    clean = tmp_path / "clean"
    (clean / "pkg").mkdir(parents=True)
    (clean / "pkg" / "a.py").write_text("a = 1\n")
    os.symlink("a.py", clean / "pkg" / "alias.py")  # inside: fine
    assert project_problem(clean) == ""
    bad = tmp_path / "bad"
    bad.mkdir()
    assert "is not valid UTF-8" in project_problem(non_utf8(bad))
    out = tmp_path / "out"
    out.mkdir()
    assert project_problem(link_out(out)) == "the symbolic link etc points outside the project"
    native = tmp_path / "native"
    native.mkdir()
    assert project_problem(native_ext(native)) == (
        "it holds a native extension module "
        "(.coditect/deps/yaml/_yaml.cpython-311-x86_64-linux-gnu.so), which a WASI guest cannot load"
    )


@pytest.mark.parametrize("make", [non_utf8, link_out, native_ext])
async def test_auto_runs_such_a_project_elsewhere_and_logs_why(tmp_path, make, caplog):
    policy = PolicySandbox("auto", registry=registry())
    with caplog.at_level(logging.WARNING, logger="coditect.sandbox.policy"):
        result = await policy.run(SandboxRequest(argv=PRINT, workdir=make(tmp_path)))
    assert (result.exit_code, result.stdout, result.backend) == (0, "ran\n", "process")
    assert "the wasm sandbox cannot run this project" in caplog.text
    assert "using the process sandbox" in caplog.text


@pytest.mark.parametrize("make", [non_utf8, link_out])
async def test_explicit_wasm_refuses_with_the_reason(tmp_path, make):
    policy = PolicySandbox("wasm", registry=registry())
    with pytest.raises(SandboxUnavailableError, match="wasm sandbox cannot run this project"):
        await policy.run(SandboxRequest(argv=PRINT, workdir=make(tmp_path)))


async def test_a_project_can_be_moved_off_a_backend_and_back(tmp_path):
    policy = PolicySandbox("auto", registry=registry())
    request = SandboxRequest(argv=PRINT, workdir=tmp_path)
    assert (await policy.run(request)).backend == "wasm"
    assert policy.avoid(tmp_path / ".", "wasm")  # the same directory, however it is written
    assert (await policy.run(request)).backend == "process"
    other = tmp_path / "other"
    other.mkdir()
    assert (await policy.run(SandboxRequest(argv=PRINT, workdir=other))).backend == "wasm"
    policy.allow(tmp_path)
    assert (await policy.run(request)).backend == "wasm"
    # a configured backend stays; with nothing else to run Python, auto stays too
    assert not PolicySandbox("wasm", registry=registry()).avoid(tmp_path, "wasm")
    only_wasm = {"wasm": registry()["wasm"]}
    assert not PolicySandbox("auto", registry=only_wasm).avoid(tmp_path, "wasm")
    # a project in the process sandbox because wasm cannot run it has nowhere else to go
    native = tmp_path / "native"
    native.mkdir()
    assert not policy.avoid(native_ext(native), "process")
    assert (await policy.run(SandboxRequest(argv=PRINT, workdir=native))).backend == "process"


async def test_the_metered_sandbox_of_a_worker_moves_the_project_too(tmp_path):
    # The distributed worker wraps its sandbox to count runs; the move must reach the policy.
    from coditect.telemetry.wrappers import MeteredSandbox

    metered = MeteredSandbox(PolicySandbox("auto", registry=registry()))
    request = SandboxRequest(argv=PRINT, workdir=tmp_path)
    assert metered.avoid(tmp_path, "wasm")
    assert (await metered.run(request)).backend == "process"
    metered.allow(tmp_path)
    assert (await metered.run(request)).backend == "wasm"
    assert metered.project_problem(tmp_path) == ""
