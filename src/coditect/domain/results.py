"""Typed results that agents return for their tasks."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Alternative",
    "AnalysisReport",
    "CodeChange",
    "FailureCategory",
    "FileEdit",
    "Finding",
    "ModuleInfo",
    "TaskResult",
    "TestFailure",
    "TestReport",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ModuleInfo(BaseModel):
    """What the analyzer found in one Python module."""

    model_config = _FROZEN

    path: str
    functions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    is_test: bool = False
    lines: int = 0


class Finding(BaseModel):
    """A pattern-detected issue (e.g. bare except, mutable default argument)."""

    model_config = _FROZEN

    path: str
    line: int
    kind: str
    message: str


class AnalysisReport(BaseModel):
    """The Analyzer's report on a repository."""

    model_config = _FROZEN

    kind: Literal["analysis"] = "analysis"
    modules: tuple[ModuleInfo, ...] = ()
    test_files: tuple[str, ...] = ()
    test_command: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    summary: str = ""

    @property
    def has_tests(self) -> bool:
        """True when the repository already has test files."""
        return bool(self.test_files)

    @property
    def source_modules(self) -> tuple[ModuleInfo, ...]:
        """Modules that are not tests."""
        return tuple(m for m in self.modules if not m.is_test)


class FileEdit(BaseModel):
    """One file written by the coder. ``before_sha256`` is empty for a new file.

    Symbols are top-level names, or ``Class.member`` for members of a class.
    """

    model_config = _FROZEN

    path: str
    before_sha256: str = ""
    after_sha256: str
    added_symbols: tuple[str, ...] = ()
    replaced_symbols: tuple[str, ...] = ()
    deleted_symbols: tuple[str, ...] = ()


class Alternative(BaseModel):
    """A candidate the coder checked but did not write: the code of its answer for ``path``.

    A later repair round of the mission weighs it again, against the tests written since
    (CodeT's dual agreement over every sample of the mission, at no model cost).
    """

    model_config = _FROZEN

    path: str
    code: str


class CodeChange(BaseModel):
    """The Coder's result: the files it wrote and how many generations it took.

    ``alternatives``: the other candidates it checked, oldest first (one per sample: two
    samples that gave the same code are two votes for it).
    """

    model_config = _FROZEN

    kind: Literal["code"] = "code"
    edits: tuple[FileEdit, ...] = ()
    generations: int = 1
    summary: str = ""
    alternatives: tuple[Alternative, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Paths of the files written."""
        return tuple(e.path for e in self.edits)


class FailureCategory(StrEnum):
    """Why a test did not pass."""

    ASSERTION = "assertion"
    EXCEPTION = "exception"
    COLLECTION = "collection"
    SYNTAX = "syntax"
    TIMEOUT = "timeout"


class TestFailure(BaseModel):
    """One failing or erroring test, categorised."""

    __test__ = False  # not a pytest test class
    model_config = _FROZEN

    test_id: str
    category: FailureCategory
    message: str = ""
    detail: str = ""


class TestReport(BaseModel):
    """The Tester's result, parsed from JUnit XML."""

    __test__ = False
    model_config = _FROZEN

    kind: Literal["tests"] = "tests"
    command: tuple[str, ...] = ()
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: tuple[TestFailure, ...] = ()
    duration_s: float = 0.0
    timed_out: bool = False
    output_tail: str = ""
    #: Failing tests that failed before the change too (the baseline): not blamed on it.
    already_failing: tuple[str, ...] = ()
    #: Test modules that could not be imported before the change either, and fail now with
    #: tests the mission wrote into them, which never ran (counted in ``errors``).
    unimportable_before: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when at least one test ran and none failed or errored."""
        return self.passed > 0 and self.failed == 0 and self.errors == 0 and not self.timed_out


TaskResult = Annotated[AnalysisReport | CodeChange | TestReport, Field(discriminator="kind")]
