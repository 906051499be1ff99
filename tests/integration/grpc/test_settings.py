"""Distributed settings: flags over environment over config file over defaults."""

from __future__ import annotations

import pytest

from coditect.distributed.settings import load_settings
from coditect.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path, monkeypatch):
    cfg_file = tmp_path / "coditect.toml"
    cfg_file.write_text(
        '[coditect]\nnats_url = "nats://file:4222"\nredis_url = "redis://file:6379/0"\n'
        'token = "from-file"\nack_wait_s = 7\n'
    )
    monkeypatch.setenv("CODITECT_REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("CODITECT_TOKEN", "from-env")
    s = load_settings(cfg_file, token="from-flag", listen=None)
    assert s.token == "from-flag"
    assert s.redis_url == "redis://env:6379/0"
    assert s.nats_url == "nats://file:4222" and s.ack_wait_s == 7
    assert s.listen == "127.0.0.1:50051"  # default


def test_config_file_from_env_and_derived_values(tmp_path, monkeypatch):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(
        'db_url = "postgresql://u@db/coditect"\nredis_cluster = "a:7000, b:7001"\n'
        'capabilities = "code, test"\n'
    )
    monkeypatch.setenv("CODITECT_CONFIG", str(cfg_file))
    s = load_settings()
    assert s.database_url == "postgresql+psycopg://u@db/coditect"
    assert s.cluster_nodes == [("a", 7000), ("b", 7001)]
    assert s.capability_list == ("code", "test")
    assert not s.tls.enabled


def test_bad_config_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("not = [toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(None, max_deliveries=0)
    with pytest.raises(ConfigError, match=r"redis_cluster: 'a' is not host:port"):
        load_settings(None, redis_cluster="a:7000,a")
    with pytest.raises(ConfigError, match="state_retention_s .* is shorter than mission_timeout_s"):
        load_settings(None, state_retention_s=60)


def test_state_retention_defaults_to_7_days_and_reads_the_env(monkeypatch):
    assert load_settings().state_retention_s == 7 * 24 * 3600
    monkeypatch.setenv("CODITECT_STATE_RETENTION_S", "86400")
    assert load_settings().state_retention_s == 86400
