"""Detecting how a project runs its tests (pure) and the baseline run in every sandbox backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.sandbox.base import SandboxRequest
from coditect.taskqueue.testsetup import (
    TestSetup,
    detect,
    detect_dir,
    record_baseline,
    related_tests,
)

PYTEST_TEST = "import pytest\n\n\ndef test_x():\n    assert True\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def detect_files(files: dict[str, str]) -> TestSetup:
    return detect(files, files.__getitem__, plugins={})


def test_flat_module_uses_plain_pytest():
    setup = detect_files({"mod.py": "def f():\n    pass\n", "tests/test_mod.py": PYTEST_TEST})
    assert setup.testpaths == ("tests",)
    assert setup.pythonpath == () and setup.config_file is None
    assert setup.command() == (
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "--junitxml=.coditect/junit.xml",
    )


def test_src_layout_found_from_the_imports_not_the_name():
    files = {
        "lib/widgets/__init__.py": "X = 1\n",
        "tests/test_w.py": "import widgets\n\n\ndef test_x():\n    assert widgets.X\n",
        "tools/helper/__init__.py": "",  # a package the tests never import
    }
    setup = detect_files(files)
    assert setup.pythonpath == ("lib",)
    assert ("-o", "pythonpath=lib") == setup.command()[7:9]


def test_configured_pythonpath_is_left_to_pytest():
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["src"]\ntestpaths = ["t"]\n',
        "src/pkg/__init__.py": "",
        "t/test_p.py": "import pkg\n\n\ndef test_x():\n    pass\n",
    }
    setup = detect_files(files)
    assert setup.config_file == "pyproject.toml"
    assert setup.testpaths == ("t",) and setup.pythonpath_configured
    assert not any(a.startswith("pythonpath=") for a in setup.command())


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\ntestpaths = checks\n"),
        ("tox.ini", "[tox]\nenvlist = py\n[pytest]\ntestpaths = checks\n"),
        ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\ntestpaths = checks\n"),
    ],
)
def test_ini_style_configs(name, text):
    setup = detect_files({name: text, "checks/test_a.py": PYTEST_TEST})
    assert setup.config_file == name and setup.testpaths == ("checks",)


def test_pytest_ini_wins_even_when_empty_and_broken_files_are_skipped():
    files = {
        "pytest.ini": "[pytest]\n",
        "pyproject.toml": "[tool.pytest.ini_options\nbroken",
        "setup.cfg": "[tool:pytest]\ntestpaths = other\n",
        "tests/test_a.py": PYTEST_TEST,
    }
    setup = detect_files(files)
    assert setup.config_file == "pytest.ini" and setup.testpaths == ("tests",)
    broken = detect_files({"pyproject.toml": "[x", "setup.cfg": "no section", "test_a.py": ""})
    assert broken.config_file is None and broken.testpaths == ()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".pytest.ini", "[pytest]\ntestpaths = checks\n"),
        ("pytest.toml", '[pytest]\ntestpaths = ["checks"]\n'),
        (".pytest.toml", '[pytest]\ntestpaths = ["checks"]\n'),
        ("pyproject.toml", '[tool.pytest]\ntestpaths = ["checks"]\n'),  # native, pytest 9
    ],
)
def test_hidden_and_toml_configs(name, text):
    setup = detect_files({name: text, "checks/test_a.py": PYTEST_TEST})
    assert setup.config_file == name and setup.testpaths == ("checks",)


def test_a_dedicated_config_file_wins_over_pyproject_even_when_empty():
    files = {
        ".pytest.ini": "",
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["other"]\n',
        "tests/test_a.py": PYTEST_TEST,
    }
    assert detect_files(files).config_file == ".pytest.ini"
    files = {"pytest.toml": "", "pytest.ini": "[pytest]\ntestpaths = other\n"}
    assert detect_files(files).config_file == "pytest.toml"
    plain = {"pyproject.toml": "[tool.black]\nline-length = 99\n", "tests/test_a.py": ""}
    assert detect_files(plain).config_file is None


def test_a_hidden_config_with_its_own_pythonpath_runs_as_configured(tmp_path: Path):
    """semver's layout: ``.pytest.ini`` puts ``src`` and ``tests`` (a helper module) on the path.

    Adding ``-o pythonpath=src`` would replace the configured value and lose ``tests``.
    """
    root = tree(
        tmp_path,
        {
            ".pytest.ini": "[pytest]\ntestpaths = tests\npythonpath = src tests\n",
            "src/pkg/__init__.py": "X = 1\n",
            "tests/helper.py": "Y = 2\n",
            "tests/test_p.py": "import pkg\nfrom helper import Y\n\n\ndef test_x():\n"
            "    assert pkg.X + Y == 3\n",
        },
    )
    setup = detect_dir(root)
    assert setup.config_file == ".pytest.ini" and setup.pythonpath_configured
    assert not any(a.startswith("pythonpath=") for a in setup.command())
    argv = (sys.executable, *setup.command(junit=str(tmp_path / "j.xml"))[1:])
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unittest_project_with_unusual_file_names():
    case = "import unittest\n\n\nclass Cases(unittest.TestCase):\n    def test_x(self):\n        pass\n"
    files = {"pkg/__init__.py": "", "pkg/tests.py": case, "tests/test_more.py": case}
    setup = detect_files(files)
    assert setup.unittest_only
    assert setup.python_files == ("tests.py",)
    argv = setup.command()
    assert "python_files=test_*.py *_test.py tests.py" in argv
    assert setup.is_test_file("pkg/tests.py") and not setup.is_test_file("pkg/core.py")
    mixed = detect_files({**files, "tests/test_p.py": PYTEST_TEST})
    assert not mixed.unittest_only
    configured = detect_files({**files, "setup.cfg": "[tool:pytest]\npython_files = check_*.py\n"})
    assert "python_files=check_*.py test_more.py tests.py" in configured.command()


def test_related_tests_by_import_and_symbol():
    tests = {
        "tests/test_a.py": "from pkg.core import parse\n\n\ndef test_x():\n    parse('1')\n",
        "tests/test_b.py": "import pkg\n\n\ndef test_y():\n    pkg.render()\n",
        "tests/test_c.py": "import other\n",
        "tests/test_bad.py": "def (",
    }
    assert related_tests(tests, ["pkg.core", "pkg"]) == ("tests/test_a.py", "tests/test_b.py")
    assert related_tests(tests, ["pkg.core", "pkg"], ["render"]) == ("tests/test_b.py",)
    assert related_tests(tests, ["nothing"]) == ()


def test_detect_dir_skips_tool_directories(tmp_path):
    tree(tmp_path, {"tests/test_a.py": PYTEST_TEST, ".venv/lib/test_site.py": PYTEST_TEST})
    assert detect_dir(tmp_path).testpaths == ("tests",)


# --- the baseline, in every sandbox backend ------------------------------------------------------

SRC_PROJECT = {
    "pyproject.toml": '[project]\nname = "shapes"\n',
    "src/shapes/__init__.py": "def area(w, h):\n    return w * h\n",
    "tests/test_shapes.py": (
        "from shapes import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n\n\n"
        "def test_known_bug():\n    assert area(0, 1) == 1\n"
    ),
}


async def test_baseline_of_a_src_layout_project_without_installing_it(sandbox, tmp_path):
    root = tree(tmp_path, SRC_PROJECT)
    baseline = await record_baseline(root, sandbox, timeout_s=120)
    assert baseline is not None
    assert baseline.outcomes == {
        "tests.test_shapes::test_area": "passed",
        "tests.test_shapes::test_known_bug": "failed",
    }
    assert baseline.failing == {"tests.test_shapes::test_known_bug"}
    stored = Baseline.from_json((root / BASELINE_PATH).read_text())
    assert stored.outcomes == baseline.outcomes and "pythonpath=src" in stored.command


async def test_a_package_that_reads_its_own_version_imports_without_being_installed(
    sandbox, tmp_path
):
    """humanize 4.9: ``__version__ = importlib.metadata.version(__name__)`` when imported."""
    from coditect.taskqueue.metadata import META_DIR
    from coditect.taskqueue.testsetup import install_missing_dependencies

    root = tree(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "Versioned-Thing"\nversion = "1.2.3"\n',
            "src/versioned_thing/__init__.py": "import importlib.metadata\n\n"
            '__version__ = importlib.metadata.version("versioned-thing")\n',
            "tests/test_v.py": "import versioned_thing\n\n\ndef test_v():\n"
            '    assert versioned_thing.__version__ == "1.2.3"\n',
        },
    )
    assert detect_dir(root).metadata == ("Versioned-Thing", "1.2.3")
    installed = await install_missing_dependencies(root)
    assert installed.requirements == ()
    assert (root / META_DIR / "versioned_thing-1.2.3.dist-info" / "METADATA").is_file()
    baseline = await record_baseline(root, sandbox, timeout_s=120)
    assert baseline is not None
    assert baseline.outcomes == {"tests.test_v::test_v": "passed"}


def test_the_metadata_is_written_only_for_code_that_reads_it():
    plain = {
        "pyproject.toml": '[project]\nname = "plain"\n',
        "plain.py": "X = 1\n",
        "tests/test_p.py": "import importlib.metadata\n" + PYTEST_TEST,  # only the tests read it
    }
    assert detect_files(plain).metadata == ()
    assert "pythonpath" not in " ".join(detect_files(plain).options())
    reads = {**plain, "plain.py": "import pkg_resources\n"}
    assert detect(reads, reads.__getitem__, plugins={}, installed=lambda n: False).metadata == (
        "plain",
        "0",
    )
    # installed here: its own metadata answers
    assert detect(reads, reads.__getitem__, plugins={}, installed=lambda n: True).metadata == ()


async def test_a_test_module_that_cannot_be_imported_does_not_stop_the_baseline(tmp_path):
    """A test-only dependency that is not installed (humanize's tests need freezegun)."""
    from coditect.sandbox.subprocess import SubprocessSandbox

    root = tree(
        tmp_path,
        {
            "tests/test_ok.py": PYTEST_TEST,
            "tests/test_needs_dep.py": "import not_installed_anywhere\n\n\ndef test_y():\n"
            "    pass\n",
        },
    )
    baseline = await record_baseline(root, SubprocessSandbox(), timeout_s=120)
    assert baseline is not None
    assert baseline.outcomes["tests.test_ok::test_x"] == "passed"
    assert baseline.failing == {"tests.test_needs_dep"}


async def test_tests_that_cannot_import_in_wasm_move_the_project_to_the_process_sandbox(tmp_path):
    """A test module that starts a thread on import: the WASI guest has no threads.

    ``auto`` ran the suite in wasm first; the process sandbox runs the module too, so the
    project's tests stay there, and the baseline's note says why.
    """
    from coditect.sandbox.policy import SANDBOX_BACKENDS, PolicySandbox

    for name in ("wasm", "process"):
        if not SANDBOX_BACKENDS[name].available():
            pytest.skip(f"needs the {name} sandbox: {SANDBOX_BACKENDS[name].install_hint}")
    threaded = (
        "import threading\n\nDONE = []\nworker = threading.Thread(target=DONE.append, args=(1,))\n"
        "worker.start()\nworker.join()\n\n\ndef test_threaded():\n    assert DONE == [1]\n"
    )
    root = tree(tmp_path, {"tests/test_plain.py": PYTEST_TEST, "tests/test_threads.py": threaded})
    policy = PolicySandbox("auto")
    baseline = await record_baseline(root, policy, timeout_s=120)
    assert baseline is not None and baseline.backend == "process"
    assert baseline.outcomes == {
        "tests.test_plain::test_x": "passed",
        "tests.test_threads::test_threaded": "passed",
    }
    assert "run in the process sandbox: in the wasm sandbox 1 test module(s)" in baseline.note
    later = await policy.run(SandboxRequest(argv=("python", "-c", "pass"), workdir=root))
    assert later.backend == "process"
    # a project whose tests import in wasm stays there
    plain = tree(tmp_path / "plain", {"tests/test_plain.py": PYTEST_TEST})
    kept = await record_baseline(plain, policy, timeout_s=120)
    assert kept is not None and (kept.backend, kept.note) == ("wasm", "")
    # a conftest that cannot load in wasm: there, the suite does not run at all
    conftest = "import threading\n\nthreading.Thread(target=print).start()\n"
    files = {"tests/test_plain.py": PYTEST_TEST, "tests/conftest.py": conftest}
    moved = await record_baseline(tree(tmp_path / "conf", files), policy, timeout_s=120)
    assert moved is not None and moved.backend == "process"
    assert moved.outcomes == {"tests.test_plain::test_x": "passed"}
    assert moved.note.endswith("in the wasm sandbox the suite did not run")
    # sqlparse 0.6's shape: a test using capfd errors in wasm (no os.dup) and the tests after
    # it error too; the process sandbox runs them all
    capfd = "import os\n\n\ndef test_fd(capfd):\n    os.write(1, b'x')\n"
    capfd += "    assert capfd.readouterr().out == 'x'\n"
    files = {"tests/test_a_fd.py": capfd, "tests/test_plain.py": PYTEST_TEST}
    moved = await record_baseline(tree(tmp_path / "fd", files), policy, timeout_s=120)
    assert moved is not None and moved.backend == "process"
    assert set(moved.outcomes.values()) == {"passed"}
    assert "in the wasm sandbox " in moved.note and "test(s) errored" in moved.note
    # a test that starts a subprocess fails in wasm (the guest has no processes)
    spawn = "import subprocess\nimport sys\n\n\ndef test_cli():\n"
    spawn += "    assert subprocess.run([sys.executable, '-c', 'pass']).returncode == 0\n"
    moved = await record_baseline(tree(tmp_path / "cli", {"tests/test_cli.py": spawn}), policy)
    assert moved is not None and moved.backend == "process"
    assert moved.outcomes == {"tests.test_cli::test_cli": "passed"}
    assert moved.note.endswith("1 test(s) failed (0 tests passed there, 1 here)")


async def test_no_tests_no_baseline(tmp_path):
    from coditect.sandbox.subprocess import SubprocessSandbox

    root = tree(tmp_path, {"mod.py": "X = 1\n"})
    assert await record_baseline(root, SubprocessSandbox()) is None
    assert not (root / BASELINE_PATH).exists()


async def test_a_run_without_report_gives_no_baseline(tmp_path):
    from coditect.sandbox.subprocess import SubprocessSandbox

    root = tree(
        tmp_path, {"tests/test_a.py": PYTEST_TEST, "tests/conftest.py": "raise SystemExit(3)\n"}
    )
    assert await record_baseline(root, SubprocessSandbox(), timeout_s=60) is None


def test_plugins_the_project_does_not_declare_are_switched_off():
    plugins = {"asyncio": "pytest-asyncio", "pytest_cov": "pytest-cov", "timeout": "pytest-timeout"}
    files = {
        "tox.ini": "[testenv]\ndeps =\n    pytest\n    pytest-cov\n",
        "tests/test_a.py": PYTEST_TEST,
    }
    setup = detect(files, files.__getitem__, plugins=plugins)
    assert setup.blocked_plugins == ("asyncio", "timeout")
    assert setup.command()[7:11] == ("-p", "no:asyncio", "-p", "no:timeout")
    # an ini option of the plugin counts as using it; no plugins installed: nothing to block
    files["pytest.ini"] = "[pytest]\nasyncio_mode = auto\n"
    assert detect(files, files.__getitem__, plugins=plugins).blocked_plugins == ("timeout",)
    assert detect(files, files.__getitem__, plugins={}).blocked_plugins == ()
