"""Low-level actions (what an agent concretely does) and the world-model facts they rest on."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from coditect.domain.tasks import Intent

__all__ = ["Action", "ActionKind", "FileRecord", "Violation", "ViolationKind"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ActionKind(StrEnum):
    """Kinds of concrete action an intent is parametrised into."""

    READ_FILES = "read_files"
    WRITE_FILES = "write_files"
    RUN_COMMAND = "run_command"


class Action(BaseModel):
    """A concrete, parametrised action for one task, produced by the parametrization engine.

    Attributes:
        intent: The intent this action serves.
        kind: What the agent will do.
        read_files: Files the agent reads (their hashes key work reuse).
        write_files: Files the agent is expected to create or modify.
        command: The command to run in the sandbox, if any.
        test_selection: Test files or node ids to run (empty: the whole suite).
        timeout_s: Wall-clock limit for the action.
        project_tests: For a code task, the project's test files (a candidate change is checked
            against the tests among them that use the code it changes).
        test_options: The pytest options of the project's test set-up (plugins, ``sys.path``).
    """

    model_config = _FROZEN

    intent: Intent
    kind: ActionKind
    read_files: tuple[str, ...] = ()
    write_files: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    test_selection: tuple[str, ...] = ()
    timeout_s: float = 120.0
    project_tests: tuple[str, ...] = ()
    test_options: tuple[str, ...] = ()


class FileRecord(BaseModel):
    """The world model's knowledge of one file."""

    model_config = _FROZEN

    path: str
    size: int
    mtime_ns: int
    sha256: str


class ViolationKind(StrEnum):
    """Categories of consistency violation."""

    TEST_FAILURE = "test_failure"
    SYNTAX_ERROR = "syntax_error"
    UNEXPECTED_CHANGE = "unexpected_change"
    MISSING_FILE = "missing_file"


class Violation(BaseModel):
    """A difference between the state expected before an action and the state found after."""

    model_config = _FROZEN

    kind: ViolationKind
    task_id: str
    path: str = ""
    message: str
