"""The store of a projector process read through its Unix socket (RemoteStore) against the real
engine: rows with aware datetimes, the read-only guard, engine errors as StoreError kinds, and a
server that went away."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams import schema
from streams.projections.remote import RemoteStore, serve_store
from streams.store import StatementError, Store, StoreError
from tests.chdb_engine import engine_url, fresh_database


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("remote"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


async def test_reads_writes_and_errors_cross_the_socket(store: Store) -> None:
    with tempfile.TemporaryDirectory(prefix="csms-remote-") as tmp:
        path = str(Path(tmp) / "store.sock")
        server = await serve_store(store, path)
        remote = RemoteStore(path, store.target)
        try:
            await remote.insert(
                "station_seen", [["CP1", 1_767_225_600 * 10**9]], ["station_id", "last_seen_at"]
            )
            rows = await remote.query(
                "SELECT station_id, last_seen_at FROM station_seen WHERE station_id = {s:String}",
                {"s": "CP1"},
            )
            assert rows == [
                {"station_id": "CP1", "last_seen_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
            ]
            names, table = await remote.query_table("SELECT 1 AS one, 'x' AS s")
            assert (names, table) == (["one", "s"], [(1, "x")])
            names, table = await remote.read_only_query("SELECT count() AS n FROM station_seen")
            assert table == [(1,)]
            with pytest.raises(StatementError):
                await remote.read_only_query("INSERT INTO station_seen (station_id) VALUES ('x')")
            with pytest.raises(StatementError):
                await remote.query("SELECT no_such_column FROM station_seen")
        finally:
            await server.close()
        with pytest.raises(StoreError):
            await remote.query("SELECT 1")  # the serving side is gone
        await remote.close()
