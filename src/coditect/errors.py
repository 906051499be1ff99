"""Errors raised by CODITECT.

Every error derives from :class:`CoditectError`. Whether an operation may be retried is data on
the error (``retryable``), never guessed from its type by callers. Adapters translate backend
errors with ``raise ... from exc``.

Tree::

    CoditectError
    ├── ConfigError                 settings are missing or contradictory
    ├── InputError                  the user's request or repository is not usable
    │   └── NotFoundError           the named mission (or task) does not exist
    ├── PlanError                   the planner could not produce a valid task graph
    │   └── CycleError              the graph has a dependency cycle
    ├── ModelError                  an LLM call failed
    │   ├── ModelUnavailableError   the model cannot be loaded or reached (retryable if transient)
    │   └── ModelOutputError        the model answered, but not in the expected shape
    ├── SandboxError                a sandbox could not run a command
    │   └── SandboxUnavailableError the backend is not installed or usable here
    ├── AgentError                  an agent could not complete its task
    ├── StoreError                  the state store failed
    ├── BusError                    the message bus refused or lost an operation (retryable)
    │   └── BusUnavailableError     the message bus cannot be reached
    ├── AuthenticationError         a service refused this process's credentials
    ├── BudgetExceededError         the next LLM call would exceed the mission's budget
    └── MissionCancelledError       the user interrupted the mission
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AuthenticationError",
    "BudgetExceededError",
    "BusError",
    "BusUnavailableError",
    "CoditectError",
    "ConfigError",
    "CycleError",
    "InputError",
    "MissionCancelledError",
    "ModelError",
    "ModelOutputError",
    "ModelUnavailableError",
    "NotFoundError",
    "PlanError",
    "SandboxError",
    "SandboxUnavailableError",
    "StoreError",
]


class CoditectError(Exception):
    """Root of all CODITECT errors.

    Attributes:
        retryable: True when the same operation may succeed if tried again later.
        hint: What the user can do about it, shown next to the message.
    """

    retryable_default = False

    def __init__(self, message: str, *, retryable: bool | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.retryable_default if retryable is None else retryable
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(CoditectError):
    """Settings are missing, malformed or contradictory."""


class InputError(CoditectError):
    """The request or repository given by the user cannot be used."""


class NotFoundError(InputError):
    """The named mission (or task) does not exist."""


class PlanError(CoditectError):
    """The planner could not produce a valid task graph."""


class CycleError(PlanError):
    """A task graph contains a dependency cycle.

    Attributes:
        cycle: The task ids on the cycle, first id repeated at the end.
    """

    def __init__(self, cycle: list[str]) -> None:
        super().__init__(f"dependency cycle: {' -> '.join(cycle)}")
        self.cycle = cycle


class ModelError(CoditectError):
    """An LLM call failed."""


class ModelUnavailableError(ModelError):
    """The model cannot be loaded or reached."""


class ModelOutputError(ModelError):
    """The model answered, but not in the shape that was asked for."""


class SandboxError(CoditectError):
    """A sandbox could not run a command (not: the command itself failed)."""


class SandboxUnavailableError(SandboxError):
    """The sandbox backend is not installed or not usable on this machine."""


class AgentError(CoditectError):
    """An agent could not complete its task."""


class StoreError(CoditectError):
    """The state store failed."""

    retryable_default = True


class BusError(CoditectError):
    """The message bus (event stream or work queue) refused or lost an operation."""

    retryable_default = True


class BusUnavailableError(BusError):
    """The message bus cannot be reached (retryable: it may come up later)."""


class AuthenticationError(CoditectError):
    """A service refused this process's credentials (token or client certificate).

    Never retryable: calling again with the same credentials is refused again.
    """


class BudgetExceededError(CoditectError):
    """The next LLM call would exceed the mission's token or USD budget (never retried)."""


class MissionCancelledError(CoditectError):
    """The mission was cancelled (for example by Ctrl-C)."""
