"""Can CODITECT run the test suites of real projects it was not written for? One JSON object.

No model is involved: for each project (an sdist from the package index, pinned), the bench
does what a mission does before its first edit, and reports what the project's own suite gave:

1. the sdist is unpacked and committed to a fresh git repository (files the project's
   ``.gitignore`` names, such as a generated ``_version.py``, stay in the folder uncommitted, as
   in a developer's checkout);
2. ``open_workspace`` makes the mission's copy; ``install_missing_dependencies`` installs what
   the project declares and CODITECT's environment lacks (wheels only, into ``.coditect/deps``);
3. ``record_baseline`` runs the whole suite with the ``auto`` sandbox policy.

Per project: tests passed / failed / errored, the backend that ran them, the dependencies
installed, the report's notes and the seconds it took; in total, the projects whose suite ran
(at least one test passed) and the tests passed. The projects are not used anywhere else in the
repository (bench/realrepo has its own), so the figure says how general the test set-up is.

    python bench/project_suites.py                     # the default 33 projects
    python bench/project_suites.py --project toolz==1.2.0 --project glom==25.12.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from coditect.sandbox.policy import PolicySandbox
from coditect.taskqueue import testsetup
from coditect.taskqueue.testsetup import record_baseline
from coditect.workspace import open_workspace

PROJECTS = (
    "colorama==0.4.6",
    "glom==25.12.0",
    "humanize==4.17.0",
    "idna==3.21",
    "itsdangerous==2.2.0",
    "pathspec==1.1.1",
    "python-dateutil==4.0.0",
    "python-slugify==9.2.0",
    "schema==0.7.8",
    "semver==3.2.0",
    "toolz==1.2.0",
    "xmltodict==1.0.4",
    # Added 2026-12-07 (tenth session), as a probe, before the changes they showed were needed.
    "arrow==1.3.0",
    "attrs==23.1.0",
    "humanize==4.9.0",
    "marshmallow==3.19.0",
    "natsort==8.4.0",
    "prettytable==3.9.0",
    "python-dotenv==1.0.0",
    "tomlkit==0.12.1",
    "wcwidth==0.2.13",
    # Added 2026-12-07 (eleventh session), as a probe, before the changes they showed were
    # needed (of the 16 probed, tomli, sortedcontainers and cerberus ship no tests in their
    # sdists, and jmespath's tests import a `tests` package the sdist lacks: left out).
    "boltons==26.2.0",
    "click==8.5.1",
    "freezegun==1.5.5",
    "funcy==2.1",
    "h11==0.16.0",
    "jsonpatch==1.48",
    "markdown-it-py==4.3.0",
    "mistune==3.4.0",
    "pluggy==1.7.0",
    "sqlparse==0.6.1",
    "tenacity==9.2.1",
    "voluptuous==0.16.0",
)
CACHE = Path.home() / ".cache" / "coditect" / "bench-sdists"


def _sdist(spec: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    name, _, version = spec.partition("==")
    stems = {name.lower().replace("-", "_"), name.lower()}
    found = [p for p in CACHE.glob("*.tar.gz") if _matches(p, stems, version)]
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + ["-d", str(CACHE), spec],
            check=True,
            capture_output=True,
        )
        found = [p for p in CACHE.glob("*.tar.gz") if _matches(p, stems, version)]
    return found[0]


def _matches(path: Path, stems: set[str], version: str) -> bool:
    stem = path.name.removesuffix(".tar.gz").lower()
    return any(stem == f"{s}-{version}" for s in stems)


def _git(cwd: Path, *args: str) -> None:
    env_args = ["-c", "user.email=bench@coditect", "-c", "user.name=bench"]
    subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True)


async def _one(spec: str, root: Path) -> dict[str, object]:
    started = time.monotonic()
    with tarfile.open(_sdist(spec)) as tar:
        tar.extractall(root, filter="data")
    (project,) = [p for p in root.iterdir() if p.is_dir()]
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "sdist")
    ws = open_workspace(project)
    # An older CODITECT (PYTHONPATH=OLD/src, for a before/after comparison) installs nothing.
    install = getattr(testsetup, "install_missing_dependencies", None)
    try:
        installed = await install(ws.path) if install is not None else None
        baseline = await record_baseline(ws.path, PolicySandbox("auto"), timeout_s=300)
    finally:
        ws.cleanup()
    outcomes = list(baseline.outcomes.values()) if baseline is not None else []
    notes = [
        *ws.notes,
        installed.note() if installed is not None else "",
        getattr(baseline, "note", ""),
    ]
    return {
        "project": spec,
        "passed": outcomes.count("passed"),
        "failed": outcomes.count("failed"),
        "errors": outcomes.count("error"),
        "backend": getattr(baseline, "backend", ""),
        "installed": list(installed.installed) if installed is not None else [],
        "notes": [n for n in notes if n],
        "seconds": round(time.monotonic() - started, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", action="append", help="NAME==VERSION (repeatable)")
    args = parser.parse_args()
    rows = []
    for spec in args.project or PROJECTS:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(await _one(spec, Path(tmp)))
        print(json.dumps(rows[-1]), file=sys.stderr)
    summary = {
        "projects": len(rows),
        "suites_running": sum(1 for r in rows if r["passed"]),
        "tests_passed": sum(int(r["passed"]) for r in rows),
        "by_backend": dict(Counter(str(r["backend"]) for r in rows)),
        "with_installed_dependencies": sum(1 for r in rows if r["installed"]),
        "per_project": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
