"""A mission on a 3,000-line module changes one method of a class and nothing else.

The scripted model answers with the changed method inside its class line; the prompt shows an
excerpt around it (never the whole module), the merge replaces that method in place, and the
diff of the module touches only the method's lines.
"""

from __future__ import annotations

import re

from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.base import estimate_tokens
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

REQUEST = "Fix `Reactor.throttle`: a negative rate must be clamped to zero, not passed through"

FIXED = '''```python
class Reactor:
    def throttle(self, rate):
        """Limit the output to ``rate`` units per tick (never below zero)."""
        self.rate = max(rate, 0)
        return self.rate
```'''

TESTS = """```python
from plantcore.engine import Reactor


def test_negative_rate_is_clamped():
    assert Reactor().throttle(-3) == 0
```"""


def _big_module() -> str:
    parts = [
        '"""Simulation engine (generated for the test; deliberately large)."""',
        "",
        "import math",
        "",
    ]
    for i in range(200):
        parts += [
            "",
            f"# Helper number {i}: kept verbatim, comments included.",
            f"def helper_{i}(x, y={i}):",
            f'    """Combine x with {i}."""',
            f"    total = x + y  # inline comment {i}",
            "    for k in range(3):",
            "        total += math.floor(k * 0.5)",
            "    return total",
            "",
        ]
    parts += [
        "",
        "class Reactor:",
        '    """A reactor with a throttle."""',
        "",
        "    rate = 1",
        "",
        "    def start(self):",
        '        """Begin the reaction."""',
        "        return True",
        "",
        "    def throttle(self, rate):",
        '        """Limit the output to ``rate`` units per tick."""',
        "        self.rate = rate",
        "        return self.rate",
        "",
        "    def stop(self):",
        '        """End the reaction."""',
        "        return False",
        "",
    ]
    for i in range(200, 450):
        parts += [
            "",
            f"def tail_{i}(values):",
            f'    """Sum values plus {i}."""',
            f"    return sum(values) + {i}  # tail {i}",
            "",
            "",
        ]
    text = "\n".join(parts) + "\n"
    assert text.count("\n") >= 3000
    return text


async def test_one_method_of_a_class_in_a_3000_line_module(tmp_path, git):
    repo = tmp_path / "plant"
    (repo / "plantcore").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "plantcore" / "__init__.py").write_text('"""Plant simulation."""\n')
    (repo / "plantcore" / "engine.py").write_text(_big_module())
    (repo / "tests" / "test_engine.py").write_text(
        "from plantcore.engine import Reactor\n\n\ndef test_start():\n"
        "    assert Reactor().start()\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    prompts: list[str] = []

    def answer(messages, settings):
        prompts.append("\n".join(m.content for m in messages))
        if settings.purpose == "plan":
            raise AssertionError("the index determines this plan; the model is not asked")
        return TESTS if "test" in settings.purpose else FIXED

    rt = build_runtime(Settings(), model=FunctionModel(answer))
    try:
        report = await rt.runner.run(REQUEST, repo)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert report.plan_source == "index"
    # A bug report: the reproduction test is asked for first, then the fix.
    code_prompt = next(p for p in prompts if "writing pytest tests" not in p)
    assert "def throttle(self, rate):" in code_prompt and "self.rate = rate" in code_prompt
    assert "tail_200" not in code_prompt or "return sum(values) + 200" not in code_prompt
    assert estimate_tokens(code_prompt) < 4096
    engine_diff = report.diff.split("--- a/plantcore/engine.py", 1)[1]
    engine_diff = engine_diff.split("\n--- a/", 1)[0]
    changed = [line for line in engine_diff.splitlines() if re.match(r"^[+-](?![+-])", line)]
    assert changed == [
        '-        """Limit the output to ``rate`` units per tick."""',
        "-        self.rate = rate",
        '+        """Limit the output to ``rate`` units per tick (never below zero)."""',
        "+        self.rate = max(rate, 0)",
    ]
