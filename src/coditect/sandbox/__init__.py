"""Sandboxes: run one command confined to a project directory.

Backends (see :mod:`coditect.sandbox.policy` for how one is chosen):

- ``wasm``: CPython compiled to WebAssembly under wasmtime; pure-Python commands only.
- ``process``: bubblewrap namespaces, an unprivileged uid and rlimits.
- ``docker``: a container per command.
- ``subprocess``: a child process with rlimits only. Not isolation; used only when configured.

Names are imported lazily (PEP 562): importing this package loads nothing, so the wasm worker
process, which lives in this package, starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult
    from coditect.sandbox.policy import (
        SANDBOX_BACKENDS,
        BackendSpec,
        PolicySandbox,
        available_backends,
        build_sandbox,
        register_backend,
    )
    from coditect.sandbox.subprocess import SubprocessSandbox

__all__ = [
    "SANDBOX_BACKENDS",
    "BackendSpec",
    "PolicySandbox",
    "Sandbox",
    "SandboxLimits",
    "SandboxRequest",
    "SandboxResult",
    "SubprocessSandbox",
    "available_backends",
    "build_sandbox",
    "register_backend",
]

_HOMES = {
    "Sandbox": "base",
    "SandboxLimits": "base",
    "SandboxRequest": "base",
    "SandboxResult": "base",
    "SubprocessSandbox": "subprocess",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_HOMES.get(name, 'policy')}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
