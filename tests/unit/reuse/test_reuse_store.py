"""One contract for every reuse store backend: memory, SQLite and Redis."""

from __future__ import annotations

import uuid

import pytest

from coditect.errors import ConfigError
from coditect.reuse.store import (
    MemoryReuseStore,
    ReuseStore,
    SqliteReuseStore,
)
from coditect.runtime import open_reuse_store


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        s: ReuseStore = MemoryReuseStore()
    elif request.param == "sqlite":
        s = SqliteReuseStore(tmp_path / "reuse.db")
    else:
        from coditect.reuse.redis_store import RedisReuseStore

        url = request.getfixturevalue("redis_url")
        s = RedisReuseStore(url, namespace=f"test:{uuid.uuid4().hex}:")
    yield s
    await s.close()


async def test_get_put_replace(store):
    assert await store.get("task:a") is None
    await store.put("task:a", '{"x": 1}')
    assert await store.get("task:a") == '{"x": 1}'
    await store.put("task:a", "é ✓")
    assert await store.get("task:a") == "é ✓"


async def test_items_by_prefix_sorted(store):
    for key in ("plan:b", "task:z", "plan:a", "plan*:x"):
        await store.put(key, key.upper())
    assert await store.items("plan:") == [("plan:a", "PLAN:A"), ("plan:b", "PLAN:B")]
    assert await store.items("nothing:") == []


async def test_sqlite_store_persists(tmp_path):
    s = SqliteReuseStore(tmp_path / "r.db")
    await s.put("k", "v")
    await s.close()
    again = SqliteReuseStore(tmp_path / "r.db")
    assert await again.get("k") == "v"
    await again.close()


async def test_open_reuse_store_by_url(tmp_path):
    s = open_reuse_store("sqlite", home=tmp_path)
    assert isinstance(s, SqliteReuseStore) and s.path == tmp_path / "reuse.db"
    await s.close()
    assert isinstance(open_reuse_store("memory", home=tmp_path), MemoryReuseStore)
    with pytest.raises(ConfigError):
        open_reuse_store("ftp://x", home=tmp_path)
