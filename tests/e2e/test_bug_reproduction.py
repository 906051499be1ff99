"""A bug report is fixed test first: reproduce, see it fail for the stated reason, fix, see it pass.

The scripted model writes the reproduction test and the fix; the mission must run the test on
the unchanged code before it asks for the fix, show the model that failure, and end SUCCESS with
the reproduction test passing. The project's module and test names share no words with the
request's verbs.
"""

from __future__ import annotations

from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

REQUEST = "slug('Hello World') returns 'hello--world' instead of 'hello-world'"

REPRO = """```python
from textkit.urls import slug


def test_one_dash_between_words():
    assert slug('Hello World') == 'hello-world'
```"""

FIX = """```python
def slug(text):
    return "-".join(text.lower().split())
```"""


async def test_bug_is_reproduced_before_it_is_fixed(tmp_path, git):
    repo = tmp_path / "proj"
    (repo / "textkit").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "textkit" / "__init__.py").write_text("")
    (repo / "textkit" / "urls.py").write_text(
        'def slug(text):\n    """Lower-case words joined by dashes."""\n'
        "    return text.lower().replace(' ', '--')\n"
    )
    (repo / "tests" / "test_urls.py").write_text(
        "from textkit.urls import slug\n\n\ndef test_lower():\n    assert slug('ab') == 'ab'\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    asked: list[tuple[str, str]] = []

    def answer(messages, settings):
        asked.append((settings.purpose, messages[-1].content))
        return REPRO if settings.purpose == "tests" else FIX

    rt = build_runtime(Settings(), model=FunctionModel(answer))
    try:
        report = await rt.runner.run(REQUEST, repo)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert [p for p, _ in asked] == ["tests", "code"]  # the test first, no plan call
    code_prompt = asked[1][1]
    assert "These tests failed" in code_prompt
    assert "'hello--world' == 'hello-world'" in code_prompt
    code_task = next(t for t in report.tasks if t.intent == "write_code")
    assert list(code_task.depends_on) == ["reproduce"]
    assert '+    return "-".join(text.lower().split())' in report.diff
    reproduced = [line for line in report.evidence if line.startswith("bug reproduced: ")]
    assert reproduced and "test_one_dash_between_words" in reproduced[0], report.evidence
