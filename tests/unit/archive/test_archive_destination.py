"""Archive destinations: URL parsing and S3 settings from the environment."""

from __future__ import annotations

import pytest

from coditect.archive import ArchiveSettings, open_destination
from coditect.errors import ConfigError


def test_s3_settings_come_from_coditect_or_aws_variables(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("CODITECT_S3_ENDPOINT", "http://127.0.0.1:8333")
    monkeypatch.setenv("CODITECT_S3_REGION", "eu-west-1")
    s = ArchiveSettings()
    assert (s.s3_endpoint, s.s3_region, s.s3_access_key, s.s3_secret_key) == (
        "http://127.0.0.1:8333", "eu-west-1", "aws-key", "aws-secret",
    )  # fmt: skip
    monkeypatch.setenv("CODITECT_S3_ACCESS_KEY", "own-key")
    assert ArchiveSettings().s3_access_key == "own-key"
    assert ArchiveSettings(s3_access_key="given").s3_access_key == "given"


def test_urls(tmp_path):
    local = open_destination(tmp_path.as_uri())
    assert local.local and local.root == str(tmp_path) and local.path("a/b") == f"{tmp_path}/a/b"
    assert open_destination(str(tmp_path)).root == str(tmp_path)
    s3 = open_destination(
        "s3://bucket/some/prefix/", ArchiveSettings(s3_endpoint="http://127.0.0.1:1")
    )
    assert (
        not s3.local
        and s3.root == "bucket/some/prefix"
        and s3.path("x.parquet") == "bucket/some/prefix/x.parquet"
    )
    assert open_destination("s3://bucket", ArchiveSettings()).root == "bucket"
    with pytest.raises(ConfigError):
        open_destination("s3:///nobucket")
    with pytest.raises(ConfigError):
        open_destination("gs://bucket/x")
