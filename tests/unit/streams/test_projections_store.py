"""Store URLs and the store's error mapping (the engine is the real chDB)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams import schema
from streams.store import StatementError, Store, StoreError, StoreUrl, default_url
from tests.chdb_engine import engine_url, fresh_database


def test_urls() -> None:
    assert StoreUrl.parse("chdb://.csms/clickhouse") == StoreUrl("chdb", "csms", ".csms/clickhouse")
    assert StoreUrl.parse("chdb:///var/lib/ch?database=x") == StoreUrl("chdb", "x", "/var/lib/ch")
    assert StoreUrl.parse("chdb://memory").path == ""
    server = StoreUrl.parse("https://u:p@ch.example:8443/analytics")
    assert (server.kind, server.database, server.url) == (
        "https",
        "analytics",
        "https://u:p@ch.example:8443/analytics",
    )
    assert StoreUrl.parse("http://ch:8123").database == "default"
    assert StoreUrl.parse("chdb://d", database="other").database == "other"
    assert default_url(Path(".csms")) == "chdb://.csms/clickhouse"
    with pytest.raises(ValueError, match="unsupported"):
        StoreUrl.parse("postgres://x")


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("store"))
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


async def test_schema_is_applied_once_and_recorded(store: Store) -> None:
    first = await schema.apply(store)
    assert first == [m.version for m in schema.migrations()]
    assert await schema.apply(store) == []
    tables = await store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    )
    assert {t["name"] for t in tables} >= set(schema.PROJECTION_TABLES)


async def test_engine_errors_are_store_errors(store: Store) -> None:
    with pytest.raises(StatementError):
        await store.query("SELECT nope FROM nowhere")
    assert issubclass(StatementError, StoreError)
    other = await Store.open(engine_url(), database=store.database)
    await other.close()
    with pytest.raises(StoreError, match="closed"):
        await other.query("SELECT 1")


async def test_times_come_back_aware_utc_and_other_values_untouched(store: Store) -> None:
    """Every DateTime/DateTime64 column (Nullable, LowCardinality too) is made aware UTC; the
    other columns, dates included, come back as the engine gave them."""
    (row,) = await store.query(
        "SELECT toDateTime64('2026-01-02 03:04:05.678', 3, 'UTC') AS ms, "
        "toNullable(toDateTime64('2026-01-02 03:04:05.123456789', 9, 'UTC')) AS ns, "
        "CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS absent, "
        "toLowCardinality(toNullable(toDateTime('2026-01-02 03:04:05', 'UTC'))) AS lc, "
        "toDate('2026-01-02') AS day, 'x' AS s, 7 AS n"
    )
    utc = dt.UTC
    assert row == {
        "ms": dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=utc),
        "ns": dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=utc),
        "absent": None,
        "lc": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc),
        "day": dt.date(2026, 1, 2),
        "s": "x",
        "n": 7,
    }
    names, rows = await store.query_table("SELECT 1 AS a, 'b' AS b")
    assert (names, rows) == (["a", "b"], [(1, "b")])
