"""The Sandbox interface: run one command, confined, and report what happened.

Backends: ``process`` (subprocess with rlimits), and later ``bwrap`` (namespaces), ``wasm``
(wasmtime + CPython/WASI) and ``docker``. A command that fails is a normal :class:`SandboxResult`
(non-zero ``exit_code``); :class:`~coditect.errors.SandboxError` means the sandbox itself could not run.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Sandbox", "SandboxLimits", "SandboxRequest", "SandboxResult"]

_GIB = 1024**3
_MIB = 1024**2


class SandboxLimits(BaseModel):
    """Resource limits for one sandboxed command."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_timeout_s: float = Field(default=120.0, gt=0)
    cpu_s: int = Field(default=120, gt=0)
    max_memory_bytes: int = Field(default=2 * _GIB, gt=0)
    max_processes: int = Field(default=256, gt=0)
    max_file_bytes: int = Field(default=256 * _MIB, gt=0)
    max_output_bytes: int = Field(default=1 * _MIB, gt=0)


class SandboxRequest(BaseModel):
    """One command to run.

    Attributes:
        argv: The command; ``argv[0]`` of ``"python"`` means the sandbox's Python interpreter.
        workdir: The project directory: the only place the command may write.
        env: Extra environment variables (the sandbox starts from an empty environment).
        limits: Resource limits.
        stdin: Bytes fed to standard input.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(min_length=1)
    workdir: Path
    env: Mapping[str, str] = Field(default_factory=dict)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    stdin: bytes = b""


class SandboxResult(BaseModel):
    """What a sandboxed command did.

    Attributes:
        killed_by: Why the sandbox stopped the command early: ``"timeout"``, ``"cpu"``,
            ``"memory"``, ``"signal"`` or empty when it ended on its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    killed_by: str = ""
    backend: str = ""


class Sandbox(abc.ABC):
    """Runs commands confined to a project directory."""

    name: str = "sandbox"

    @abc.abstractmethod
    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` and return its result.

        Raises:
            SandboxUnavailableError: This backend cannot run here.
            SandboxError: The sandbox failed to start the command.
        """

    def supports(self, argv: tuple[str, ...]) -> bool:
        """Whether this backend can run ``argv`` (a WASM sandbox only runs pure Python)."""
        return True

    def project_problem(self, workdir: Path) -> str:
        """Why this backend cannot present the project at ``workdir`` faithfully ("" if it can).

        The policy asks before running a command, so ``auto`` can pick another backend.
        """
        return ""

    def avoid(self, workdir: Path, backend: str) -> bool:
        """Run later commands in ``workdir`` on another backend than ``backend``, if one can.

        True when another backend will be used from now on; a single backend has no other and
        returns False (the policy of ``auto`` overrides this).
        """
        return False

    def allow(self, workdir: Path) -> None:
        """Undo :meth:`avoid` for ``workdir`` (a single backend has nothing to undo)."""
        return None

    @staticmethod
    def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
        """The environment a sandboxed command sees: a fixed minimum plus ``extra``; no secrets.

        String hashing is fixed (``PYTHONHASHSEED=0``): a test suite parametrized from a set
        (``@pytest.mark.parametrize(..., {(..), ..})``) gets the same test ids in every run, so the
        run before a change and the run after it name the same tests. Coverage data goes to
        ``.coditect/`` (never committed, never a change): a project whose pytest options say
        ``--cov`` (semver 3.2.0's ``.pytest.ini``) otherwise rewrites ``.coverage`` in its root
        at every test run, and a code task was failed for changing a file it did not declare.
        """
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONHASHSEED": "0",
            "HOME": "/tmp",
            "COVERAGE_FILE": ".coditect/coverage",
        }
        env.update(extra)
        return env
