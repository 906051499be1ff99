"""Which backend the policy picks, with registries of real backends whose availability is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.errors import ConfigError, SandboxUnavailableError
from coditect.sandbox.base import SandboxRequest
from coditect.sandbox.policy import (
    SANDBOX_BACKENDS,
    BackendSpec,
    PolicySandbox,
    available_backends,
    build_sandbox,
    lazy_backend,
)
from coditect.sandbox.subprocess import SubprocessSandbox
from coditect.sandbox.wasm import WasmSandbox

PYTEST = ("python", "-m", "pytest", "-q", "tests")
SHELL = ("sh", "-c", "make test")


class _ProcessStandIn(SubprocessSandbox):
    """A real subprocess backend standing in for bubblewrap under the name ``process``."""

    name = "process"


def _registry(*, wasm: bool, process: bool, docker: bool = False) -> dict[str, BackendSpec]:
    return {
        "wasm": BackendSpec("wasm", WasmSandbox, lambda: wasm, "pip install wasmtime"),
        "process": BackendSpec(
            "process", _ProcessStandIn, lambda: process, "apt-get install bubblewrap"
        ),
        "docker": BackendSpec("docker", SubprocessSandbox, lambda: docker, "start dockerd"),
        "subprocess": BackendSpec(
            "subprocess", SubprocessSandbox, lambda: True, "nothing", isolating=False
        ),
    }


def test_auto_prefers_wasm_for_python() -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=True, process=True))
    assert policy.choose(PYTEST).name == "wasm"
    assert policy.choose(("python", "-c", "pass")).name == "wasm"


def test_auto_uses_process_for_what_wasm_cannot_run() -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=True, process=True))
    assert policy.choose(SHELL).name == "process"


def test_auto_uses_process_when_wasm_is_missing() -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=False, process=True))
    assert policy.choose(PYTEST).name == "process"


def test_auto_falls_back_to_docker() -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=False, process=False, docker=True))
    assert isinstance(policy.choose(SHELL), SubprocessSandbox)  # the docker slot's stand-in


def test_auto_never_picks_the_unisolated_backend() -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=True, process=False))
    assert policy.choose(PYTEST).name == "wasm"
    with pytest.raises(SandboxUnavailableError) as info:
        policy.choose(SHELL)
    assert "bubblewrap" in info.value.hint
    assert "subprocess" in info.value.hint
    assert not policy.supports(SHELL)


def test_explicit_backend_is_used() -> None:
    policy = PolicySandbox("subprocess", registry=_registry(wasm=True, process=True))
    assert policy.choose(PYTEST).name == "subprocess"
    assert policy.name == "subprocess"


def test_explicit_backend_that_is_missing() -> None:
    policy = PolicySandbox("process", registry=_registry(wasm=True, process=False))
    with pytest.raises(SandboxUnavailableError) as info:
        policy.choose(PYTEST)
    assert info.value.hint == "apt-get install bubblewrap"


def test_explicit_wasm_refuses_non_python() -> None:
    policy = PolicySandbox("wasm", registry=_registry(wasm=True, process=True))
    with pytest.raises(SandboxUnavailableError, match="cannot run 'sh'"):
        policy.choose(SHELL)


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PolicySandbox("vm", registry=_registry(wasm=True, process=True))


async def test_run_dispatches(tmp_path: Path) -> None:
    policy = PolicySandbox("auto", registry=_registry(wasm=False, process=True))
    result = await policy.run(SandboxRequest(argv=("sh", "-c", "echo hi"), workdir=tmp_path))
    assert (result.exit_code, result.stdout, result.backend) == (0, "hi\n", "process")


def test_lazy_backend_with_a_missing_module() -> None:
    spec = lazy_backend("ghost", "coditect.sandbox.no_such_module", "Ghost", install_hint="none")
    assert not spec.available()
    assert available_backends({"ghost": spec}) == []


def test_default_registry() -> None:
    assert {"wasm", "process", "docker", "subprocess"} <= set(SANDBOX_BACKENDS)
    assert not SANDBOX_BACKENDS["subprocess"].isolating
    assert "subprocess" in available_backends()
    sandbox = build_sandbox("auto")
    assert isinstance(sandbox, PolicySandbox)
    assert sandbox.name == "auto"
