"""World model benchmark: scan a 10,000-file tree, time queries and an incremental rescan.

Usage: python bench/world_model.py [--files N] [--queries N] [--seed N]

Prints one JSON object: files, full_scan_s, query_p50_ms, query_p99_ms (1,000 mixed get / glob /
changed_since queries), per-kind p99 (glob and changed_since split into first-time "uncached"
answers and repeated ones, answered from the per-version cache),
rescan_s (after modifying 10 files), noop_rescan_s, and the SQLite save / load / first-scan-
after-load times that make a new process's first scan incremental.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from coditect.state.sql import SqlStore, sqlite_url
from coditect.taskqueue.world_model import WorldModel

PKGS, SUBS = 20, 10


def build_tree(root: Path, n: int, rng: random.Random) -> list[str]:
    """``n`` files under root/pkgNN/subMM/ (70% .py, tests too), plus an ignored .git dir."""
    per_dir = max(1, n // (PKGS * SUBS))
    paths: list[str] = []
    for i in range(n):
        d = (i // per_dir) % (PKGS * SUBS)
        pkg, sub = divmod(d, SUBS)
        k = i % per_dir
        kind = rng.random()
        if kind < 0.55:
            name = f"mod_{k}.py"
        elif kind < 0.70:
            name = f"test_mod_{k}.py"
        elif kind < 0.85:
            name = f"data_{k}.json"
        else:
            name = f"notes_{k}.txt"
        rel = f"pkg{pkg:02d}/sub{sub:02d}/{name}"
        if rel in paths[-per_dir:]:
            rel = rel.replace(".", f"_{i}.", 1)
        paths.append(rel)
    for rel in paths:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(rng.randint(100, 2000)).hex().encode())
    (root / ".git" / "objects").mkdir(parents=True)
    for j in range(200):
        (root / ".git" / "objects" / f"o{j}").write_bytes(b"x" * 100)
    return paths


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run(n_files: int, n_queries: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        paths = build_tree(root, n_files, rng)
        time.sleep(0.1)  # let the files age past the racy window, as a real tree would be

        w = WorldModel(root)
        stats = w.scan()
        full_scan_s = stats.duration_s

        # A few small changes so changed_since has versions to answer about.
        for _ in range(5):
            for rel in rng.sample(paths, 2):
                with open(root / rel, "ab") as f:
                    f.write(b"#")
            w.scan()

        patterns = [
            f"pkg{rng.randrange(PKGS):02d}/sub{rng.randrange(SUBS):02d}/*.py" for _ in range(80)
        ]
        patterns += [
            "**/test_*.py",
            "**/*.json",
            "pkg03/**/*.py",
            "pkg07/sub0?/test_*.py",
            "*/sub05/mod_1.py",
            "pkg1[0-2]/**/*.txt",
        ]
        times: dict[str, list[float]] = {
            "get": [],
            "glob": [],
            "glob_uncached": [],
            "changed_since": [],
            "changed_since_uncached": [],
        }
        all_ms: list[float] = []
        seen_patterns: set[str] = set()
        seen_versions: set[int] = set()
        for _ in range(n_queries):
            r = rng.random()
            if r < 1 / 3:
                key = "get"
                path = rng.choice(paths) if rng.random() < 0.9 else "pkg99/nope.py"
                t0 = time.perf_counter_ns()
                w.get(path)
            elif r < 2 / 3:
                pattern = rng.choice(patterns)
                key = "glob" if pattern in seen_patterns else "glob_uncached"
                seen_patterns.add(pattern)
                t0 = time.perf_counter_ns()
                w.glob(pattern)
            else:
                version = rng.randrange(0, w.version + 1)
                key = "changed_since" if version in seen_versions else "changed_since_uncached"
                seen_versions.add(version)
                t0 = time.perf_counter_ns()
                w.changed_since(version)
            ms = (time.perf_counter_ns() - t0) / 1e6
            times[key].append(ms)
            all_ms.append(ms)

        noop = w.scan()
        changed = rng.sample(paths, 10)
        for rel in changed:
            with open(root / rel, "ab") as f:
                f.write(b"# changed\n")
        rescan = w.scan()
        assert rescan.modified == 10, rescan

        persist = asyncio.run(_persistence(w, root, Path(tmp) / "state.db"))

        out: dict[str, object] = {
            "files": stats.files,
            "full_scan_s": round(full_scan_s, 4),
            "query_count": len(all_ms),
            "query_p50_ms": round(statistics.median(all_ms), 4),
            "query_p99_ms": round(percentile(all_ms, 99), 4),
            "query_max_ms": round(max(all_ms), 4),
        }
        for key, values in times.items():
            if values:
                out[f"{key}_n"] = len(values)
                out[f"{key}_p99_ms"] = round(percentile(values, 99), 4)
        out.update(
            {
                "rescan_s": round(rescan.duration_s, 4),
                "rescan_hashed": rescan.hashed,
                "noop_rescan_s": round(noop.duration_s, 4),
                **persist,
            }
        )
        return out


async def _persistence(w: WorldModel, root: Path, db: Path) -> dict[str, object]:
    store = SqlStore(sqlite_url(db))
    try:
        t0 = time.perf_counter()
        await w.save(store, "bench")
        save_s = time.perf_counter() - t0
        fresh = WorldModel(root)
        t0 = time.perf_counter()
        await fresh.load(store, "bench")
        load_s = time.perf_counter() - t0
        first = fresh.scan()
    finally:
        await store.close()
    return {
        "index_save_s": round(save_s, 4),
        "index_load_s": round(load_s, 4),
        "scan_after_load_s": round(first.duration_s, 4),
        "scan_after_load_hashed": first.hashed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.files, args.queries, args.seed)))


if __name__ == "__main__":
    main()
