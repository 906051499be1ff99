"""Consistency checks: the state expected before an action, compared with the state after it.

Before an action the orchestrator records an :class:`Expectation` (the file hashes and which files
the action may write); after the agent finished and the world model was rescanned,
:meth:`ConsistencyChecker.check` lists every :class:`~coditect.domain.Violation`:

- ``TEST_FAILURE``: the result is a test report that is not ok (one per failing test).
- ``SYNTAX_ERROR``: a changed or added ``.py`` file does not compile.
- ``UNEXPECTED_CHANGE``: a file changed, appeared or disappeared that the action was not allowed
  to write (``write_files`` may hold globs); reads and test runs may change nothing (paths the
  world model ignores, such as ``.coditect/`` and ``__pycache__/``, are never seen).
- ``MISSING_FILE``: a file the action was expected to produce is absent afterwards.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from coditect.domain.actions import Action, ActionKind, Violation, ViolationKind
from coditect.domain.results import CodeChange, TaskResult, TestReport
from coditect.domain.tasks import TaskSpec
from coditect.taskqueue.world_model import WorldModel, compile_glob

__all__ = ["ConsistencyChecker", "Expectation", "syntax_error"]

_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the world should look like after an action, recorded before it runs.

    Attributes:
        task_id: The task the action belongs to.
        kind: The action's kind.
        before: Path -> SHA-256 of every file before the action (read-only view).
        write_files: Paths or globs the action may create, modify or delete.
        must_exist: Paths the action must leave present (the literal ``write_files`` of a write).
        version: The world model's version when the expectation was recorded.
    """

    task_id: str
    kind: ActionKind
    before: Mapping[str, str]
    write_files: tuple[str, ...] = ()
    must_exist: tuple[str, ...] = ()
    version: int = 0

    def allows(self, path: str) -> bool:
        """True when the action was allowed to change ``path``."""
        for pattern in self.write_files:
            if pattern == path or (_MAGIC.search(pattern) and compile_glob(pattern).match(path)):
                return True
        return False


class ConsistencyChecker:
    """Records the expected state before each action and lists violations after it."""

    def expect(self, task: TaskSpec, action: Action, world: WorldModel) -> Expectation:
        """Record the state before ``action`` runs (``world`` should be freshly scanned)."""
        writes = action.write_files if action.kind is ActionKind.WRITE_FILES else ()
        return Expectation(
            task_id=task.id,
            kind=action.kind,
            before=MappingProxyType(world.snapshot()),
            write_files=tuple(writes),
            must_exist=tuple(p for p in writes if not _MAGIC.search(p)),
            version=world.version,
        )

    def check(
        self, exp: Expectation, world: WorldModel, result: TaskResult | None
    ) -> list[Violation]:
        """Compare the rescanned ``world`` with ``exp``; violations in a stable order."""
        after = world.snapshot()
        before = exp.before
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        out: list[Violation] = []
        out += _test_failures(exp.task_id, result)
        out += _syntax_errors(exp.task_id, world, [p for p in changed if p in after])
        for path in changed:
            if exp.allows(path):
                continue
            what = "deleted" if path not in after else "added" if path not in before else "modified"
            scope = (
                f"only {', '.join(exp.write_files)} may change"
                if exp.write_files
                else f"a {exp.kind.value.replace('_', ' ')} action must not change files"
            )
            out.append(
                Violation(
                    kind=ViolationKind.UNEXPECTED_CHANGE,
                    task_id=exp.task_id,
                    path=path,
                    message=f"{path} was {what}, but {scope}",
                )
            )
        claimed = result.paths if isinstance(result, CodeChange) else ()
        for path in dict.fromkeys((*exp.must_exist, *claimed)):
            if path not in after:
                out.append(
                    Violation(
                        kind=ViolationKind.MISSING_FILE,
                        task_id=exp.task_id,
                        path=path,
                        message=f"{path} should exist after the action but does not",
                    )
                )
        return out


def _test_failures(task_id: str, result: TaskResult | None) -> list[Violation]:
    if not isinstance(result, TestReport) or result.ok:
        return []
    out = [
        Violation(
            kind=ViolationKind.TEST_FAILURE,
            task_id=task_id,
            path=f.test_id.split("::", 1)[0],
            message=f"{f.test_id} [{f.category.value}]" + (f": {f.message}" if f.message else ""),
        )
        for f in result.failures
    ]
    if not out:
        if result.timed_out:
            why = "the test run timed out"
        elif result.passed == 0 and not (result.failed or result.errors):
            why = "no test ran"
        else:
            why = f"{result.failed} failed, {result.errors} errors (no details reported)"
        out.append(Violation(kind=ViolationKind.TEST_FAILURE, task_id=task_id, message=why))
    return out


def _syntax_errors(task_id: str, world: WorldModel, paths: list[str]) -> list[Violation]:
    out: list[Violation] = []
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            source = world.read_text(path)
        except OSError:
            continue  # vanished after the scan; the next scan reports it
        error = syntax_error(source, path)
        if error is not None:
            line, msg = error
            out.append(
                Violation(
                    kind=ViolationKind.SYNTAX_ERROR,
                    task_id=task_id,
                    path=path,
                    message=f"{path}:{line}: {msg}",
                )
            )
    return out


def syntax_error(source: str, filename: str = "<string>") -> tuple[int, str] | None:
    """``(line, message)`` when ``source`` does not compile as Python, else None."""
    try:
        with warnings.catch_warnings():
            # A SyntaxWarning (e.g. an invalid escape) is not an error; under "error" filters
            # compile() would turn it into a SyntaxError.
            warnings.simplefilter("ignore")
            compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno or 0, exc.msg
    except ValueError as exc:  # e.g. source code string cannot contain null bytes
        return 0, str(exc)
    return None
