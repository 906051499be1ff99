"""Prompt templates for the coder, tuned for a small local model (Qwen2.5-Coder-1.5B-Instruct).

Short prompts (prompt processing costs time too) that ask for only the new or changed top-level
definitions in one fenced block, never the whole file: fewer output tokens, and the merge keeps
the rest of the file exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "CODE_SYSTEM",
    "CODE_USER",
    "EXAMPLES_FAILED",
    "EXCERPT_NOTE",
    "FAILURES",
    "NOT_REPRODUCED",
    "REJECTED",
    "TESTS_SYSTEM",
    "TESTS_USER",
    "asks_removal",
    "code_prompt",
    "examples_failed_block",
    "failures_block",
    "not_reproduced_prompt",
    "rejected_prompt",
    "tests_prompt",
]

CODE_SYSTEM = """\
You are an expert Python developer. Reply with one ```python code block and nothing else.
Put in it only the functions or classes you add or change (with any imports they need), \
complete; give a new function a docstring, but leave out the docstring of an existing one \
(it is kept). Do not repeat unchanged code. No example usage, no prints, no tests."""

CODE_USER = """\
Request: {request}
{task}File {path}{excerpt}:
```python
{source}
```
{notes}{failures}{write}{member_note}{remove_note}"""

#: Said when the file is shown as an excerpt (a large file): the model must not rewrite it.
EXCERPT_NOTE = " (an excerpt: ... marks code left out)"
MEMBER_NOTE = " To change a method, write its class line and only that method."
#: Said when the request asks to remove something: how an answer deletes a definition.
REMOVE_NOTE = " To remove a definition or an import, write `del NAME` (`del Class.method`)."
# A removal: the leading verb, of code (a defect is fixed, not removed: "Remove the crash in
# ..." is a bug report), and code as its object: an identifier (``name``, snake_case, CamelCase,
# a call) or a word for a kind of code ("Delete the cache entry when it expires" asks for a
# feature).
_REMOVAL = re.compile(
    r"^\W*(?:please\s+)?(?:remove|delete|get rid of)\s+(?!(?:the|a|an|this|that)?\s*"
    r"(?:bugs?|crash(?:es)?|errors?|exceptions?|failures?|regressions?|tracebacks?)\b)",
    re.I,
)
_CODE_OBJECT = re.compile(
    r"`[^`]+`|\w+\(|\b[a-z0-9]+_\w+|\b\w*[a-z][A-Z]\w*|\b\w*[A-Z]{2}[a-z]{2}\w*|\b(?:functions?|"
    r"methods?|class(?:es)?|constants?|parameters?|arguments?|attributes?|decorators?|imports?|"
    r"modules?|options?|aliases|alias|helpers?|properties|property|fields?|exports?)\b"
)


def asks_removal(request: str) -> bool:
    """Whether ``request`` asks for code to be removed: its leading verb, and code its object.

    Only then may an answer delete (``del NAME``): deleting is never how a bug gets fixed.
    """
    return bool(_REMOVAL.search(request) and _CODE_OBJECT.search(request))


TESTS_SYSTEM = """\
You are an expert Python developer writing pytest tests. Reply with one ```python code block \
and nothing else: the import line, then at most 3 new test functions (def test_...), each short \
(at most 4 plain asserts, values you are sure of). Do not repeat existing tests."""

TESTS_USER = """\
Request: {request}
{task}Code under test:
```python
{subject}
```
Import it with: {import_line}
Existing test file {path}:
```python
{source}
```
{failures}Write new pytest tests for {names}."""

FAILURES = """\
These tests failed:
{items}
Fix the code so that they pass.
"""

REJECTED = """\
Your answer was rejected: {error}
Reply again with one ```python block that fixes this."""

NOT_REPRODUCED = """\
{why}, so they do not reproduce the bug in the request. Write a test that calls the code with \
the inputs the request describes and asserts the result the request says is correct: it must \
fail on the current code. Reply with one ```python block."""

EXAMPLES_FAILED = """\
An earlier answer was wrong on these examples the user gave:
{items}
Write the code so that every example holds."""

_MAX_FAILURES = 5
_MAX_MESSAGE_CHARS = 300
_MAX_EXAMPLES = 3
_MAX_EXAMPLE_CHARS = 200


def _task_line(request: str, description: str) -> str:
    if not description or description.strip() == request.strip():
        return ""
    return f"Task: {description.strip()}\n"


def failures_block(failures: Sequence[tuple[str, str]], feedback: str = "") -> str:
    """The failing tests of a repair round: ``(test id, message)`` pairs and free feedback."""
    items = [
        f"- {tid}: {msg.strip()[:_MAX_MESSAGE_CHARS]}" for tid, msg in failures[:_MAX_FAILURES]
    ]
    if feedback.strip():
        items.append(f"- {feedback.strip()[: _MAX_MESSAGE_CHARS * 2]}")
    return FAILURES.format(items="\n".join(items)) if items else ""


def examples_failed_block(failed: Sequence[tuple[str, str]]) -> str:
    """What an answer did on the user's examples it fails: ``(example, why)`` pairs.

    ``why`` is the check's own text: ``gave X`` (an ``AssertionError`` of the example check)
    or the exception the call raised; "" when not known.
    """
    items = []
    for example, why in failed[:_MAX_EXAMPLES]:
        why = why.removeprefix("AssertionError: ").strip()
        if why and not why.startswith("gave "):
            why = f"raised {why}"
        said = f": it {why[:_MAX_EXAMPLE_CHARS]}" if why else ""
        items.append(f"- {example[:_MAX_EXAMPLE_CHARS]} does not hold{said}")
    return EXAMPLES_FAILED.format(items="\n".join(items)) if items else ""


def code_prompt(
    *,
    request: str,
    description: str,
    path: str,
    source: str,
    failures: str = "",
    notes: str = "",
    excerpt: bool = False,
    new_names: Sequence[str] = (),
) -> str:
    """The user prompt asking for new or changed code in ``path`` (``source`` may be an excerpt).

    ``new_names``: definitions the request asks for that do not exist yet, named in the
    closing instruction.
    """
    return CODE_USER.format(
        write=write_instruction(path, new_names),
        excerpt=EXCERPT_NOTE if excerpt else "",
        member_note=MEMBER_NOTE if "class " in source else "",
        remove_note=REMOVE_NOTE if asks_removal(request) or asks_removal(description) else "",
        notes=notes,
        request=request.strip(),
        task=_task_line(request, description),
        path=path,
        source=source.rstrip() or "# (new file)",
        failures=failures,
    )


def write_instruction(path: str, new_names: Sequence[str] = ()) -> str:
    """The closing instruction of a code prompt: what to write for ``path``."""
    if not new_names:
        return f"Write only the new or changed code for {path}."
    names = ", ".join(new_names)
    return (
        f"Write the new {names} (not in the project yet) and only the other new or changed "
        f"code for {path}."
    )


def tests_prompt(
    *,
    request: str,
    description: str,
    path: str,
    source: str,
    subject: str,
    import_line: str,
    names: Sequence[str],
    failures: str = "",
) -> str:
    """The user prompt asking for new tests in ``path`` of the code in ``subject``."""
    failures = failures.replace("Fix the code", "Fix the tests") if failures else ""
    return TESTS_USER.format(
        request=request.strip(),
        task=_task_line(request, description),
        subject=subject.rstrip() or "# (not found)",
        import_line=import_line or "(the module's functions)",
        path=path,
        source=source.rstrip() or "# (new file)",
        failures=failures,
        names=", ".join(names) or "the code under test",
    )


def not_reproduced_prompt(why: str) -> str:
    """The follow-up message after reproduction tests that pass on the buggy code (``why``)."""
    return NOT_REPRODUCED.format(why=why)


def rejected_prompt(error: str) -> str:
    """The follow-up message after an answer that could not be used."""
    return REJECTED.format(error=error)
