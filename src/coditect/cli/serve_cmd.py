"""``coditect serve orchestrator|taskqueue``, ``coditect worker`` and ``coditect submit``.

Every option can also be set by a ``CODITECT_<NAME>`` environment variable or in a TOML
config file (``--config``/``CODITECT_CONFIG``); flags win over the environment, which wins
over the file. docs/distributed.md lists every setting.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from coditect.domain.events import (
    AgentAct,
    AgentLearn,
    AgentThink,
    Event,
    MissionState,
    TaskState,
)
from coditect.errors import CoditectError, InputError

__all__ = ["register", "serve_app"]

serve_app = typer.Typer(
    help="Run a distributed-mode service (see docs/distributed.md).", no_args_is_help=True
)

EXIT_FAILED, EXIT_INPUT = 1, 2
EXIT_UNVERIFIED = 3  # as `coditect run` (docs/report.md)

# --- shared options (each also CODITECT_<NAME> in the environment) -------------------------------
Config = Annotated[
    Path | None, typer.Option(help="TOML settings file (env CODITECT_CONFIG).", show_default=False)
]
Listen = Annotated[
    str | None,
    typer.Option(help="host:port to listen on (env CODITECT_LISTEN).", show_default=False),
]
Nats = Annotated[
    str | None,
    typer.Option(
        "--nats", help="NATS URL, JetStream on (env CODITECT_NATS_URL).", show_default=False
    ),
]
Redis = Annotated[
    str | None,
    typer.Option("--redis", help="Redis URL (env CODITECT_REDIS_URL).", show_default=False),
]
RedisCluster = Annotated[
    str | None,
    typer.Option(
        "--redis-cluster",
        help="Redis Cluster nodes host:port,... (env CODITECT_REDIS_CLUSTER).",
        show_default=False,
    ),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Metadata database, postgresql://... (env CODITECT_DB_URL).",
        show_default=False,
    ),
]
TaskQueueAddr = Annotated[
    str | None,
    typer.Option(
        "--taskqueue",
        help="Task queue service host:port (env CODITECT_TASKQUEUE).",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        help="Bearer token (servers require it, clients send it) (env CODITECT_TOKEN).",
        show_default=False,
    ),
]
TlsCert = Annotated[
    Path | None,
    typer.Option(help="PEM certificate of this end (env CODITECT_TLS_CERT).", show_default=False),
]
TlsKey = Annotated[
    Path | None,
    typer.Option(help="PEM key of this end (env CODITECT_TLS_KEY).", show_default=False),
]
TlsCa = Annotated[
    Path | None,
    typer.Option(
        help="PEM CA that verifies the other end (env CODITECT_TLS_CA).", show_default=False
    ),
]
RequireClientCert = Annotated[
    bool | None,
    typer.Option(
        "--tls-require-client-cert/--no-tls-require-client-cert",
        help="Mutual TLS: demand a client certificate (env CODITECT_TLS_REQUIRE_CLIENT_CERT).",
        show_default=False,
    ),
]
BudgetUsd = Annotated[
    float | None,
    typer.Option(
        help="Stop a mission before an LLM call that would pass this many USD "
        "(env CODITECT_BUDGET_USD).",
        show_default=False,
    ),
]
BudgetTokens = Annotated[
    int | None,
    typer.Option(
        help="Stop a mission before an LLM call that would pass this many tokens "
        "(env CODITECT_BUDGET_TOKENS).",
        show_default=False,
    ),
]
Reuse = Annotated[
    bool | None,
    typer.Option(
        "--reuse/--no-reuse",
        help="Reuse plans, task results and LLM answers from the shared store in Redis "
        "(env CODITECT_REUSE; on by default).",
        show_default=False,
    ),
]
ReuseUrl = Annotated[
    str | None,
    typer.Option(
        help="The shared reuse store (default: the --redis server; env CODITECT_REUSE_URL).",
        show_default=False,
    ),
]
Llm = Annotated[
    str | None,
    typer.Option(
        help="Model: local or a provider spec, as for `coditect run --llm` (env CODITECT_LLM).",
        show_default=False,
    ),
]
Deadline = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        help="Deadline of each gRPC call, s (env CODITECT_RPC_DEADLINE_S).",
        show_default=False,
    ),
]
ConnectWait = Annotated[
    float | None,
    typer.Option(
        "--connect-wait",
        help="Retry NATS/Redis/database at start for this long, s (env CODITECT_CONNECT_WAIT_S).",
        show_default=False,
    ),
]
QueueName = Annotated[
    str | None,
    typer.Option(
        help="JetStream stream/subject name (env CODITECT_QUEUE_NAME).", show_default=False
    ),
]
AckWait = Annotated[
    float | None,
    typer.Option(
        help="Redeliver a task after this long without a heartbeat, s (env CODITECT_ACK_WAIT_S).",
        show_default=False,
    ),
]
StateRetention = Annotated[
    float | None,
    typer.Option(
        "--state-retention",
        help="Keep a mission's Redis keys this long after its last write, s; default 604800 "
        "= 7 days (env CODITECT_STATE_RETENTION_S).",
        show_default=False,
    ),
]
LogLevel = Annotated[str, typer.Option(help="Log level.")]
MetricsListen = Annotated[
    str | None,
    typer.Option(
        help="Serve Prometheus metrics on host:port at /metrics; off by default "
        "(env CODITECT_METRICS_LISTEN).",
        show_default=False,
    ),
]


def _settings(config: Path | None, **overrides: Any) -> Any:
    from coditect.distributed.settings import load_settings

    return load_settings(config, **overrides)


def _fail(exc: CoditectError) -> typer.Exit:
    console = Console(stderr=True)
    console.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {exc.hint}")
    return typer.Exit(EXIT_INPUT if isinstance(exc, InputError) else EXIT_FAILED)


def _logging(level: str) -> None:
    from coditect.logging import configure_logging

    configure_logging(level=level.upper())


def _telemetry(cfg: Any, service: str) -> None:
    """Export this process's spans if an OTLP endpoint or a trace file is configured."""
    from coditect.telemetry.tracing import setup_tracing

    setup_tracing(service, otlp_endpoint=cfg.otlp_endpoint, trace_file=cfg.trace_file)


def _ready(name: str, host: str) -> Any:
    def announce(port: int) -> None:
        sys.stdout.write(f"coditect {name} listening on {host}:{port}\n")
        sys.stdout.flush()

    return announce


@serve_app.command("orchestrator")
def serve_orchestrator(
    config: Config = None,
    listen: Listen = None,
    taskqueue: TaskQueueAddr = None,
    db: Db = None,
    token: Token = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    tls_require_client_cert: RequireClientCert = None,
    llm: Llm = None,
    deadline: Deadline = None,
    connect_wait: ConnectWait = None,
    nats: Nats = None,
    redis: Redis = None,
    queue_name: QueueName = None,
    metrics_listen: MetricsListen = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    reuse: Reuse = None,
    reuse_url: ReuseUrl = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the Orchestrator: plans missions, creates their branches, drives them to an end.

    It reads the agents' events of its missions from NATS (the <NAME>_EVENTS stream) and
    reaches the work queue and Redis through the task queue service; --redis is accepted for
    symmetry.
    """
    from coditect.runtime.distributed import run_until_signalled, start_orchestrator

    _logging(log_level)
    try:
        cfg = _settings(
            config, listen=listen, taskqueue=taskqueue, db_url=db, token=token, tls_cert=tls_cert,
            tls_key=tls_key, tls_ca=tls_ca, tls_require_client_cert=tls_require_client_cert, llm=llm,
            rpc_deadline_s=deadline, connect_wait_s=connect_wait, nats_url=nats, redis_url=redis,
            queue_name=queue_name, metrics_listen=metrics_listen, budget_usd=budget_usd,
            budget_tokens=budget_tokens, reuse=reuse, reuse_url=reuse_url,
        )  # fmt: skip
        _telemetry(cfg, "orchestrator")

        async def main() -> None:
            svc = await start_orchestrator(cfg)
            await run_until_signalled(svc, _ready("orchestrator", cfg.listen.rsplit(":", 1)[0]))

        asyncio.run(main())
    except CoditectError as exc:
        raise _fail(exc) from None


@serve_app.command("taskqueue")
def serve_taskqueue(
    config: Config = None,
    listen: Listen = None,
    nats: Nats = None,
    redis: Redis = None,
    redis_cluster: RedisCluster = None,
    token: Token = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    tls_require_client_cert: RequireClientCert = None,
    connect_wait: ConnectWait = None,
    queue_name: QueueName = None,
    ack_wait: AckWait = None,
    state_retention: StateRetention = None,
    metrics_listen: MetricsListen = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the TaskQueue: tasks onto NATS JetStream, task state and results in Redis."""
    from coditect.runtime.distributed import run_until_signalled, start_taskqueue

    _logging(log_level)
    try:
        cfg = _settings(
            config, listen=listen, nats_url=nats, redis_url=redis, redis_cluster=redis_cluster,
            token=token, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
            tls_require_client_cert=tls_require_client_cert, connect_wait_s=connect_wait,
            queue_name=queue_name, ack_wait_s=ack_wait, metrics_listen=metrics_listen,
            state_retention_s=state_retention,
        )  # fmt: skip
        _telemetry(cfg, "taskqueue")

        async def main() -> None:
            svc = await start_taskqueue(cfg)
            await run_until_signalled(svc, _ready("taskqueue", cfg.listen.rsplit(":", 1)[0]))

        asyncio.run(main())
    except CoditectError as exc:
        raise _fail(exc) from None


def worker(
    capabilities: Annotated[
        str | None,
        typer.Option(
            help="Task kinds to lease: analyze,code,test (env CODITECT_CAPABILITIES).",
            show_default=False,
        ),
    ] = None,
    config: Config = None,
    taskqueue: TaskQueueAddr = None,
    nats: Nats = None,
    redis: Redis = None,
    redis_cluster: RedisCluster = None,
    token: Token = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    llm: Llm = None,
    sandbox: Annotated[
        str | None, typer.Option(help="Sandbox backend (env CODITECT_SANDBOX).", show_default=False)
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(help="This worker's name (env CODITECT_WORKER_ID).", show_default=False),
    ] = None,
    connect_wait: ConnectWait = None,
    queue_name: QueueName = None,
    ack_wait: AckWait = None,
    burst: Annotated[bool, typer.Option(help="Exit when no task is waiting.")] = False,
    state_retention: StateRetention = None,
    metrics_listen: MetricsListen = None,
    reuse: Reuse = None,
    reuse_url: ReuseUrl = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run a worker: lease tasks, clone the mission branch, run the agents, push, report."""
    from coditect.runtime.distributed import run_worker

    _logging(log_level)
    try:
        cfg = _settings(
            config, capabilities=capabilities, taskqueue=taskqueue, nats_url=nats, redis_url=redis,
            redis_cluster=redis_cluster, token=token, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
            llm=llm, sandbox=sandbox, worker_id=worker_id, connect_wait_s=connect_wait,
            queue_name=queue_name, ack_wait_s=ack_wait, metrics_listen=metrics_listen,
            state_retention_s=state_retention, reuse=reuse, reuse_url=reuse_url,
        )  # fmt: skip
        _telemetry(cfg, "worker")
        from coditect.leftovers import collect

        collect()  # sandbox folders of workers that were killed (kill -9) on this machine

        def started() -> None:  # after the task queue service accepted the credentials
            sys.stdout.write(f"coditect worker {cfg.worker_id or '(default id)'} started\n")
            sys.stdout.flush()

        asyncio.run(run_worker(cfg, burst=burst, on_ready=started))
    except CoditectError as exc:
        raise _fail(exc) from None


def submit(
    request: Annotated[str, typer.Argument(help="What to change, in plain words.")],
    repo: Annotated[
        str, typer.Option("--repo", "-r", help="Git URL or path the workers can reach.")
    ],
    server: Annotated[
        str | None,
        typer.Option(help="Orchestrator host:port (env CODITECT_SERVER).", show_default=False),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Stream events until the mission ends.")
    ] = False,
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Print the plan; start nothing.")
    ] = False,
    base_ref: Annotated[str, typer.Option(help="Branch, tag or commit to start from.")] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the report with --watch).")
    ] = False,
    config: Config = None,
    token: Token = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    deadline: Deadline = None,
) -> None:
    """Submit a mission to an orchestrator; with --watch, follow it to its end."""
    from coditect.api.clients import OrchestratorClient
    from coditect.domain.mission import MissionOutcome
    from coditect.runtime.distributed import client_options

    console = Console(stderr=as_json)
    try:
        cfg = _settings(
            config, server=server, token=token, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
            rpc_deadline_s=deadline,
        )  # fmt: skip
        _telemetry(cfg, "client")
    except CoditectError as exc:
        raise _fail(exc) from None

    from coditect.telemetry import tracing

    @tracing.traced("coditect.submit", kind=tracing.SpanKind.CLIENT)
    async def main() -> int:
        async with OrchestratorClient(client_options(cfg, cfg.server)) as client:
            resp = await client.submit(
                request,
                repo,
                base_ref=base_ref,
                plan_only=plan_only,
                deadline_s=max(cfg.rpc_deadline_s, 60.0),
            )
            plan = [
                {
                    "id": t.id,
                    "intent": t.intent,
                    "depends_on": list(t.depends_on),
                    "capability": t.capability,
                }
                for t in resp.plan.tasks
            ]
            if not watch:
                if as_json:
                    out = {"mission_id": resp.mission_id, "branch": resp.branch, "plan": plan}
                    sys.stdout.write(json.dumps(out, indent=2) + "\n")
                else:
                    console.print(
                        f"mission [bold]{resp.mission_id}[/] on branch {resp.branch or '-'}"
                    )
                    for t in plan:
                        after = f" after {', '.join(t['depends_on'])}" if t["depends_on"] else ""
                        console.print(f"  {t['id']} {t['intent']}{after}")
                return 0
            console.print(f"mission {resp.mission_id}: {len(plan)} task(s), branch {resp.branch}")
            async for event in client.watch(resp.mission_id):
                console.print(f"[dim]{event.ts:%H:%M:%S}[/] {_event_line(event)}", markup=True)
            report = await client.get(resp.mission_id)
            if as_json:
                sys.stdout.write(report.model_dump_json(indent=2) + "\n")
            else:
                console.print(
                    f"{report.status.value}: {report.reason or report.branch} {report.commit[:10]}"
                )
            if report.status is MissionOutcome.UNVERIFIED:
                return EXIT_UNVERIFIED  # the change is on the branch; its tests disagree
            return 0 if report.status is MissionOutcome.SUCCESS else EXIT_FAILED

    try:
        code = asyncio.run(main())
    except CoditectError as exc:
        raise _fail(exc) from None
    if code:
        raise typer.Exit(code)


def _event_line(event: Event) -> str:
    """One watched event as text: type, task, agent and what it says."""
    from rich.markup import escape

    match event:
        case AgentThink():
            what = event.text
        case AgentAct():
            what = f"{event.action}{'' if event.ok else ' (failed)'}: {event.detail}"
        case AgentLearn():
            what = event.lesson
        case TaskState():
            what = f"{event.state.value} {event.error}"
        case MissionState():
            what = f"{event.state.value} {event.reason}"
    head = " ".join(x for x in (event.type, event.task_id, event.agent) if x)
    return escape(f"{head} {what.strip()[:200]}")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and ``submit`` to the ``coditect`` command."""
    app.add_typer(serve_app, name="serve")
    app.command("worker")(worker)
    app.command("submit")(submit)
