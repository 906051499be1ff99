"""Settings: from keyword arguments, ``CODITECT_*`` environment variables, or defaults.

URLs and names pick the backends; only :mod:`coditect.runtime` turns them into objects.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coditect.agents.candidates import DEFAULT_CANDIDATE_TEMPERATURE, DEFAULT_CANDIDATES

__all__ = ["Settings", "default_home", "engine_url"]


def default_home() -> Path:
    """``$XDG_DATA_HOME/coditect`` or ``~/.local/share/coditect``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coditect"


def engine_url(db_url: str) -> str:
    """A database URL as SQLAlchemy opens it: ``postgresql://`` uses the psycopg 3 driver."""
    for plain in ("postgresql://", "postgres://"):
        if db_url.startswith(plain):
            return "postgresql+psycopg://" + db_url[len(plain) :]
    return db_url


class Settings(BaseSettings):
    """CODITECT settings.

    Attributes:
        home: Where missions, events and backups are kept (SQLite database ``state.db``).
        llm: Which model: ``local`` (embedded, the default) or a provider spec.
        sandbox: Sandbox backend: ``auto``, ``wasm``, ``process``, ``subprocess`` or ``docker``.
        max_repairs: Repair rounds after a failing test run.
        mission_timeout_s: A mission fails when it runs longer.
        task_timeout_s: A task fails when it runs longer.
        test_timeout_s: Wall-clock limit of one test run in the sandbox.
        error_threshold: The mission fails after this many task errors.
        reuse: Reuse earlier work (task results, plans, LLM responses); see docs/reuse.md.
        reuse_url: Where reused work is kept: ``sqlite`` (``home/reuse.db``, the default),
            ``memory`` or ``redis://HOST:PORT/DB`` (shared by every worker).
        budget_usd: Hard USD limit of one mission's LLM calls (None: no limit).
        budget_tokens: Hard limit of one mission's LLM tokens, input plus output (None: no limit).
        candidates: Code candidates the coder may sample when its first answer fails the
            evidence (docstring examples, earlier tests); 1 turns sampling off (docs/report.md).
        candidate_temperature: Sampling temperature of those extra candidates.
        db_url: The state database (``postgresql://...``, as the distributed services'
            ``--db``); "" is SQLite in ``home``. ``coditect status`` / ``show`` then read the
            distributed mode's missions.
    """

    model_config = SettingsConfigDict(env_prefix="CODITECT_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    llm: str = "local"
    sandbox: str = "auto"
    max_repairs: int = Field(default=2, ge=0, le=10)
    mission_timeout_s: float = Field(default=900.0, gt=0)
    task_timeout_s: float = Field(default=300.0, gt=0)
    test_timeout_s: float = Field(default=120.0, gt=0)
    error_threshold: int = Field(default=6, ge=1)
    reuse: bool = True
    reuse_url: str = "sqlite"
    budget_usd: float | None = Field(default=None, ge=0)
    budget_tokens: int | None = Field(default=None, ge=0)
    candidates: int = Field(default=DEFAULT_CANDIDATES, ge=1, le=16)
    candidate_temperature: float = Field(default=DEFAULT_CANDIDATE_TEMPERATURE, ge=0.0, le=2.0)
    db_url: str = ""

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the state database (``db_url``, else SQLite in ``home``)."""
        return engine_url(self.db_url) if self.db_url else f"sqlite:///{self.home / 'state.db'}"
