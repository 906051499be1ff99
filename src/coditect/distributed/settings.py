"""Settings of the distributed services: flags, ``CODITECT_*`` environment variables, a TOML file.

Precedence, highest first: command-line flags, environment variables, the config file
(``--config`` or ``CODITECT_CONFIG``), defaults. Every field is documented in docs/distributed.md.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from coditect.api.security import TlsConfig
from coditect.api.server import DEFAULT_MAX_MESSAGE_BYTES
from coditect.config import default_home, engine_url
from coditect.errors import ConfigError
from coditect.state.base import DEFAULT_STATE_RETENTION_S

__all__ = ["DistributedSettings", "load_settings"]


class DistributedSettings(BaseSettings):
    """Every setting of ``coditect serve``, ``coditect worker`` and ``coditect submit``.

    Attributes:
        home: State directory (clones of mission repositories, the default SQLite database).
        listen: ``host:port`` a service listens on.
        server: ``host:port`` of the orchestrator (``coditect submit``).
        taskqueue: ``host:port`` of the task queue service (orchestrator and workers).
        nats_url: NATS server with JetStream.
        redis_url: Redis server (``redis://host:port/db``); ignored when ``redis_cluster`` is set.
        redis_cluster: Redis Cluster nodes, ``host:port,host:port,...``.
        db_url: Mission metadata database (``postgresql://...``; default SQLite in ``home``).
        token: Bearer token required by servers and sent by clients ("" disables it).
        tls_cert, tls_key: This end's certificate and key (PEM).
        tls_ca: CA that verifies the other end (servers: client certificates; clients: the server).
        tls_require_client_cert: Servers demand a client certificate (mutual TLS).
        max_message_bytes: Largest gRPC message sent or received.
        rpc_deadline_s: Deadline of each gRPC call.
        rpc_retries: Extra attempts of an idempotent call after UNAVAILABLE / DEADLINE_EXCEEDED.
        connect_wait_s: How long NATS, Redis and the database are retried at start.
        llm: Model of the planner (orchestrator) and the agents (workers).
        sandbox: Sandbox backend of the workers.
        capabilities: What a worker leases, comma-separated.
        worker_id: A worker's name (default ``<hostname>-<pid>``).
        queue_name: Names the JetStream streams (``<NAME>_TASKS``, ``<NAME>_DLQ``) and subjects.
        ack_wait_s: A leased task is redelivered when its worker is silent this long (so a
            killed worker's task runs again elsewhere within it).
        heartbeat_s: How often a worker tells NATS that it still runs a task (None: a
            quarter of ``ack_wait_s``); must be at most half of ``ack_wait_s``, so that a live
            but busy worker does not lose its task.
        max_deliveries: Deliveries of a task before it is dead-lettered.
        mission_timeout_s, task_timeout_s, test_timeout_s, max_repairs, error_threshold:
            As in one-process mode.
        budget_usd: Most one mission may spend on LLM calls, in US dollars (None: no limit).
        budget_tokens: Most fresh LLM tokens one mission may use (None: no limit).
        reuse: Reuse plans and task results across missions (and answer repeated identical
            LLM calls from the response cache).
        reuse_url: The shared reuse store ("" = the Redis of ``redis_url``; ``memory`` keeps
            it per process). Workers and the orchestrator must name the same store.
        task_delay_s: Workers sleep this long before each task (for fault-injection tests).
        state_retention_s: A mission's Redis keys (task states, results, applied pushes, file
            index, checkpoint, cancel flag, push-lock fence) expire this long after its last
            write to them (task queue and workers).
        metrics_listen: ``host:port`` of the Prometheus ``/metrics`` endpoint ("" = off; port
            0 picks a free one).
        otlp_endpoint: OTLP/HTTP collector URL spans are exported to ("" falls back to the
            standard ``OTEL_EXPORTER_OTLP_ENDPOINT``; neither set = no export).
        trace_file: Append finished spans to this file as JSON lines (debugging, tests).
    """

    model_config = SettingsConfigDict(env_prefix="CODITECT_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    listen: str = "127.0.0.1:50051"
    server: str = "127.0.0.1:50051"
    taskqueue: str = "127.0.0.1:50052"
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: str = ""
    db_url: str = ""
    token: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_require_client_cert: bool = False
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024)
    rpc_deadline_s: float = Field(default=10.0, gt=0)
    rpc_retries: int = Field(default=3, ge=0)
    connect_wait_s: float = Field(default=10.0, ge=0)
    llm: str = "local"
    sandbox: str = "auto"
    capabilities: str = "analyze,code,test"
    worker_id: str = ""
    queue_name: str = Field(default="coditect", pattern=r"^[a-z][a-z0-9_-]*$")
    ack_wait_s: float = Field(default=4.0, gt=0)
    heartbeat_s: float | None = Field(default=None, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    mission_timeout_s: float = Field(default=900.0, gt=0)
    task_timeout_s: float = Field(default=300.0, gt=0)
    test_timeout_s: float = Field(default=120.0, gt=0)
    max_repairs: int = Field(default=2, ge=0, le=10)
    error_threshold: int = Field(default=6, ge=1)
    budget_usd: float | None = Field(default=None, gt=0)
    budget_tokens: int | None = Field(default=None, gt=0)
    reuse: bool = True
    reuse_url: str = ""
    task_delay_s: float = Field(default=0.0, ge=0)
    state_retention_s: float = Field(default=DEFAULT_STATE_RETENTION_S, gt=0)
    metrics_listen: str = Field(default="", pattern=r"^(|.+:\d{1,5})$")
    otlp_endpoint: str = ""
    trace_file: Path | None = None

    @field_validator("redis_cluster")
    @classmethod
    def _check_cluster_nodes(cls, value: str) -> str:
        """Reject a node list that is not ``host:port,host:port,...`` when loading."""
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"redis_cluster: {item!r} is not host:port; give the nodes as "
                    "host:port,host:port,... (e.g. 10.0.0.1:7000,10.0.0.2:7000)"
                )
        return value

    @model_validator(mode="after")
    def _check_retention(self) -> DistributedSettings:
        """Refuse a retention shorter than a mission may run: its state would expire mid-way."""
        if self.state_retention_s < self.mission_timeout_s:
            raise ValueError(
                f"state_retention_s ({self.state_retention_s:g}s) is shorter than "
                f"mission_timeout_s ({self.mission_timeout_s:g}s): a running mission's Redis "
                "state could expire; raise state_retention_s (default 604800 = 7 days)"
            )
        return self

    @model_validator(mode="after")
    def _check_heartbeat(self) -> DistributedSettings:
        """Refuse heartbeats so rare that a live worker's task would be redelivered."""
        if self.heartbeat_s is not None and self.heartbeat_s > self.ack_wait_s / 2:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s:g}s) is more than half of ack_wait_s "
                f"({self.ack_wait_s:g}s): a running task could be delivered to a second worker; "
                "lower heartbeat_s or raise ack_wait_s"
            )
        return self

    @property
    def heartbeat_interval_s(self) -> float:
        """The effective heartbeat interval of a worker's running task."""
        return self.heartbeat_s or self.ack_wait_s / 4

    @property
    def tls(self) -> TlsConfig:
        """The TLS files as a :class:`TlsConfig`."""
        return TlsConfig(
            cert=self.tls_cert,
            key=self.tls_key,
            ca=self.tls_ca,
            require_client_cert=self.tls_require_client_cert,
        )

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the metadata database (``postgresql://`` uses psycopg 3)."""
        return engine_url(self.db_url or f"sqlite:///{self.home / 'distributed.db'}")

    @property
    def capability_list(self) -> tuple[str, ...]:
        """The worker's capabilities."""
        return tuple(c.strip() for c in self.capabilities.split(",") if c.strip())

    @property
    def cluster_nodes(self) -> list[tuple[str, int]] | None:
        """Redis Cluster nodes, or None for a single server."""
        if not self.redis_cluster:
            return None
        nodes = []
        for item in filter(None, (part.strip() for part in self.redis_cluster.split(","))):
            host, _, port = item.rpartition(":")
            nodes.append((host, int(port)))
        return nodes


def load_settings(config: Path | None = None, **overrides: Any) -> DistributedSettings:
    """Settings from flags (``overrides``; None values are ignored), env and a TOML file.

    Raises:
        ConfigError: The config file cannot be read or parsed, or a value is invalid.
    """
    path = config or (
        Path(os.environ["CODITECT_CONFIG"]) if os.environ.get("CODITECT_CONFIG") else None
    )
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        file_values = data.get("coditect", data)

    class _WithFile(DistributedSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                InitSettingsSource(settings_cls, init_kwargs=file_values),
            )

    try:
        loaded = _WithFile(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    return DistributedSettings.model_validate(loaded.model_dump())
