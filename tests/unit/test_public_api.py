import subprocess
import sys

import coditect


def test_public_api_is_pinned_and_sorted():
    assert coditect.__all__ == sorted(coditect.__all__)
    assert coditect.__all__ == [
        "AgentError", "BudgetExceededError", "CoditectError", "ConfigError", "CycleError",
        "InputError", "MissionOutcome", "MissionReport", "MissionRunner", "Model", "ModelError",
        "PlanError", "Runtime", "Sandbox", "SandboxError", "Settings", "TaskGraph", "TaskSpec",
        "__version__", "build_runtime",
    ]  # fmt: skip
    for name in coditect.__all__:
        assert getattr(coditect, name) is not None


def test_unknown_names_raise_and_import_is_light():
    try:
        coditect.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
    code = "import coditect, sys; print(any(m.startswith(('llama_cpp', 'wasmtime')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
