"""The project's declared dependencies: what it declares (pure), what is missing, a real install."""

from __future__ import annotations

from pathlib import Path

from coditect.sandbox.base import Sandbox
from coditect.taskqueue import deps
from coditect.taskqueue.deps import (
    DEPS_DIR,
    Declared,
    DepsInstall,
    declared_requirements,
    install_requirements,
    missing_requirements,
    project_name,
)
from coditect.taskqueue.testsetup import detect, install_missing_dependencies, record_baseline


def _project(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def declared(files: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found = declared_requirements(files, files.__getitem__)
    return found.runtime, found.tests


def test_pyproject_dependencies_test_extras_and_groups():
    pyproject = """
[project]
name = "thing"
dependencies = ["attrs>=20", "face"]
[project.optional-dependencies]
tests = ["freezegun"]
docs = ["sphinx"]
[dependency-groups]
test = ["hypothesis", {include-group = "lint"}]
lint = ["ruff"]
"""
    files = {"pyproject.toml": pyproject}
    assert declared(files) == (("attrs>=20", "face"), ("freezegun", "hypothesis"))
    assert project_name(files, files.__getitem__) == "thing"
    assert declared({"pyproject.toml": "[project\nbroken"}) == ((), ())


def test_setup_cfg_setup_py_and_requirements_files():
    files = {
        "setup.cfg": "[metadata]\nname = old\n[options]\ninstall_requires =\n    boltons>=19\n"
        "    attrs  # comment\n[options.extras_require]\ntesting = pytest-mock\nyaml = PyYAML\n",
        "setup.py": "from setuptools import setup\nDEPS = ['x']\nsetup(name='old',"
        " install_requires=['face>=20.1'], tests_require=['mock'], extras_require={'test':"
        " ['freezegun'], 'docs': ['sphinx']}, packages=DEPS)\n",
        "requirements.txt": "tox==4.8.0\n",  # the developers' tools: the metadata says enough
    }
    assert declared(files) == (
        ("boltons>=19", "attrs", "face>=20.1"),
        ("pytest-mock", "mock", "freezegun"),
    )
    assert project_name(files, files.__getitem__) == "old"
    assert declared({"setup.py": "setup(install_requires=compute())\n"}) == ((), ())
    application = {
        "requirements.txt": "-r base.txt\nrequests==2.31 \\\n    --hash=sha256:abc\n"
        "git+https://example.org/x.git\n# only a comment\n",
        "requirements-test.txt": "pytest\nresponses\n",
        "requirements/docs.txt": "sphinx\n",
        "docs/requirements.txt": "furo\n",
    }
    # A file named for tests is what the tests need (and the tools that run them).
    assert declared(application) == (("requests==2.31",), ("pytest", "responses"))


def test_extras_given_by_name_and_the_projects_own_extras():
    # marshmallow 3.19: extras_require=EXTRAS_REQUIRE, a dict the module assigns first.
    setup_py = (
        "from setuptools import setup\nEXTRAS_REQUIRE = {'tests': ['pytest', 'pytz'],"
        " 'lint': ['flake8']}\nEXTRAS_REQUIRE['dev'] = EXTRAS_REQUIRE['tests']\n"
        "REQS = ['packaging>=17.0']\nsetup(install_requires=REQS, extras_require=EXTRAS_REQUIRE)\n"
    )
    assert declared({"setup.py": setup_py}) == (("packaging>=17.0",), ("pytest", "pytz"))
    # attrs 23.1: tests = ["attrs[tests-no-zope]", "zope.interface"]
    pyproject = """
[project]
name = "attrs"
[project.optional-dependencies]
tests-no-zope = ["hypothesis", "pympler"]
tests = ["attrs[tests-no-zope]", "zope.interface", "attrs[tests]"]
docs = ["furo"]
"""
    assert declared({"pyproject.toml": pyproject}) == (
        (),
        ("zope.interface", "hypothesis", "pympler"),
    )


def test_tox_testenv_deps_are_test_requirements():
    tox = (
        "[tox]\nenvlist = py3\n[testenv]\ndeps =\n    pytest\n    hypothesis>=6\n"
        "    py38: mock\n    -r requirements-dev.txt\n    {env:EXTRA:}\n"
        "commands = pytest\n"
    )
    files = {"setup.py": "setup(install_requires=['six'])\n", "tox.ini": tox}
    assert declared(files) == (("six",), ("pytest", "hypothesis>=6"))
    assert declared({"tox.ini": "[testenv\nbroken"}) == ((), ())


def test_the_name_of_a_project_configured_by_setup_py_comes_from_its_pkg_info():
    files = {"setup.py": "setup(name=NAME)\n", "PKG-INFO": "Metadata-Version: 2.1\nName: natsort\n"}
    assert project_name(files, files.__getitem__) == "natsort"


def test_only_what_is_not_installed_here_is_missing():
    here = {"attrs", "Requests"}

    def installed(name: str) -> bool:
        return name in here

    runtime = (
        "attrs>=99",  # installed in another version: left alone
        "face>=20",
        "pytest>=9",  # the runner is CODITECT's
        "pytest-benchmark",  # a plugin: installed, pytest loads it
        "Pygments",
        "thing[tests]",  # the project itself
        "tomli; python_version < '3.0'",  # marker false here
        "colorful; extra == 'color'",
        "pkg @ https://example.org/pkg.whl",  # never fetched by URL
        "not a requirement!",
        "face>=20",
    )
    # tox drives the tests; a plugin's fixtures are used without importing it (``mocker``)
    tests = ("tox<5", "freezegun", "PyYAML", "python-dateutil", "pytest_mock>=3")
    declared = Declared(runtime, tests)
    imported = {"freezegun", "yaml", "dateutil", "pytest", "thing"}
    missing = missing_requirements(
        declared, imported=imported, project="Thing", installed=installed
    )
    assert missing == (
        "face>=20",
        "pytest-benchmark",
        "freezegun",
        "PyYAML",
        "python-dateutil",
        "pytest_mock>=3",
    )
    assert missing_requirements(declared, project="Thing", installed=installed) == (
        "face>=20",
        "pytest-benchmark",
        "pytest_mock>=3",
    )


def test_the_command_puts_the_installed_dependencies_on_the_path():
    files = {
        "pyproject.toml": '[project]\nname = "p"\ndependencies = ["face"]\n',
        "src/p/__init__.py": "",
        "tests/test_p.py": "import p\n\n\ndef test_x():\n    pass\n",
    }
    setup = detect(files, files.__getitem__, plugins={}, installed=lambda name: False)
    assert setup.missing_requirements == ("face",)
    assert "pythonpath=src " + DEPS_DIR in setup.command()
    # a configured pythonpath is repeated, since the override replaces it
    files["pyproject.toml"] += '[tool.pytest.ini_options]\npythonpath = ["lib", "src"]\n'
    setup = detect(files, files.__getitem__, plugins={}, installed=lambda name: False)
    assert "pythonpath=lib src " + DEPS_DIR in setup.command()
    nothing_missing = detect(files, files.__getitem__, plugins={}, installed=lambda name: True)
    assert not any(a.startswith("pythonpath=") for a in nothing_missing.command())


def test_the_report_note_says_what_was_installed_or_why_not():
    assert DepsInstall(()).note() == ""
    assert DepsInstall(("face",)).note() == (
        "the project's dependencies missing here were installed for its tests: face"
    )
    both = DepsInstall(("face", "old"), failed=("old",), error="no wheel").note()
    assert both == (
        "the project's dependencies missing here were installed for its tests: face; "
        "the project's dependencies old are not installed here and could not be installed "
        "(no wheel); tests that import them cannot run"
    )


async def test_a_failed_install_leaves_nothing_and_is_not_retried(tmp_path: Path):
    bad = ("coditect-no-such-distribution-xyz==0.0.1",)
    first = await install_requirements(tmp_path, bad, timeout_s=120)
    assert first.failed == bad and first.installed == () and first.error
    assert not (tmp_path / DEPS_DIR).exists()
    assert list((tmp_path / ".coditect").glob("*.tmp")) == []
    assert deps._FAILED[bad] == first
    assert await install_requirements(tmp_path, bad) == first


async def test_one_dependency_without_a_wheel_does_not_keep_the_others_out(tmp_path: Path):
    wanted = ("coditect-no-such-distribution-xyz==0.0.1", "six>=1.10")
    done = await install_requirements(tmp_path, wanted, timeout_s=240)
    assert done.installed == ("six>=1.10",) and done.failed == wanted[:1] and done.error
    assert (tmp_path / DEPS_DIR / "six.py").is_file()
    again = await install_requirements(tmp_path, reversed(wanted))
    assert again.reused and again.failed == done.failed and again.error == done.error


async def test_a_project_whose_tests_import_a_missing_dependency_runs_them(
    tmp_path: Path, sandbox: Sandbox
):
    """glom's shape: the package imports a dependency CODITECT's environment lacks (``six``);
    natsort 8.4's: tox's deps name pytest-mock, whose ``mocker`` the tests use unimported.

    The wheels come from the package index (pip, on the host, wheels only); the test runs in
    the sandbox, which sees the installed dependencies because they are inside the project.
    """
    files = {
        "pyproject.toml": '[project]\nname = "uses-six"\ndependencies = ["six>=1.10"]\n',
        "tox.ini": "[testenv]\ndeps =\n    pytest\n    pytest-mock\n",
        "usessix/__init__.py": "import six\n\nNAME = six.__name__\n",
        "tests/test_it.py": "import usessix\n\n\ndef test_x(mocker):\n"
        "    assert usessix.NAME == 'six'\n"
        "    mocker.patch.object(usessix, 'NAME', 'mocked')\n"
        "    assert usessix.NAME == 'mocked'\n",
    }
    _project(tmp_path, files)
    done = await install_missing_dependencies(tmp_path)
    assert done.installed == ("pytest-mock", "six>=1.10") and not done.failed, done.error
    assert (tmp_path / DEPS_DIR / "six.py").is_file()
    assert deps.plugins(tmp_path) == ("pytest-mock",)
    again = await install_missing_dependencies(tmp_path)
    assert again.reused
    baseline = await record_baseline(tmp_path, sandbox, timeout_s=120)
    assert baseline is not None and baseline.plugins_off == ()
    assert baseline.outcomes == {"tests.test_it::test_x": "passed"}


def _broken_plugin(root: Path) -> None:
    """A plugin installed in the deps directory that stops pytest before any test runs."""
    target = root / DEPS_DIR
    info = target / "pytest_broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nbroken = pytest_broken\n")
    (target / "pytest_broken.py").write_text(
        "def pytest_configure(config):\n    raise RuntimeError('written for pytest 3')\n"
    )


async def test_a_plugin_the_suite_cannot_run_with_is_left_out(tmp_path: Path, sandbox: Sandbox):
    files = {
        "tox.ini": "[testenv]\ndeps =\n    pytest-broken\n",
        "tests/test_a.py": "def test_a():\n    assert True\n",
    }
    _project(tmp_path, files)
    _broken_plugin(tmp_path)
    assert deps.plugins(tmp_path) == ("pytest-broken",)
    baseline = await record_baseline(tmp_path, sandbox, timeout_s=120)
    assert baseline is not None
    assert baseline.outcomes == {"tests.test_a::test_a": "passed"}
    assert baseline.plugins_off == ("pytest-broken",)
    assert "pytest-broken" in baseline.note and "written for pytest 3" in baseline.note
    assert deps.plugins(tmp_path) == ()  # later runs of the mission run without it
    deps.reload_plugins(tmp_path, ["pytest-broken"])
    assert deps.plugins(tmp_path) == ("pytest-broken",)
    deps.unload_plugins(tmp_path, ["pytest-broken"])
    deps.unload_plugins(tmp_path, ["pytest-broken"])  # idempotent
    assert deps.plugins(tmp_path) == ()


async def test_plugins_stay_when_the_suite_does_not_run_without_them_either(tmp_path: Path):
    from coditect.sandbox.subprocess import SubprocessSandbox

    files = {
        "tox.ini": "[testenv]\ndeps =\n    pytest-broken\n",
        "tests/conftest.py": "raise SystemExit(3)\n",
        "tests/test_a.py": "def test_a():\n    assert True\n",
    }
    _project(tmp_path, files)
    _broken_plugin(tmp_path)
    assert await record_baseline(tmp_path, SubprocessSandbox(), timeout_s=60) is None
    assert deps.plugins(tmp_path) == ("pytest-broken",)
