"""The ready-made reports and the read-only query path, in the real engine (chDB)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from csms.domain.events import FrameEvent
from streams import queries, schema
from streams.reports import REPORTS, ReportFilters, run_report
from streams.store import Store
from tests.chdb_engine import engine_url, fresh_database
from tests.projection_events import ScriptedStation, project_messages


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("rep"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


def day_of_sessions() -> list[list[FrameEvent]]:
    messages: list[list[FrameEvent]] = []
    for n, model in ((1, "Fast"), (2, "Slow")):
        st = ScriptedStation(f"CP{n}", session_id=f"s{n}")
        messages.append([st.connected()])
        boot = {"chargePointVendor": "ACME", "chargePointModel": model, "firmwareVersion": "1.0"}
        messages.append(st.answered("BootNotification", boot, {"status": "Accepted"}))
        for hour in (8, 9):
            tx = n * 10 + hour
            start = {
                "connectorId": 1,
                "idTag": "T",
                "meterStart": 0,
                "timestamp": f"2026-01-01T0{hour}:00:00Z",
            }
            messages.append(st.answered("StartTransaction", start, {"transactionId": tx}))
            stop = {
                "transactionId": tx,
                "meterStop": 1000 * n,
                "timestamp": f"2026-01-01T0{hour}:30:00Z",
            }
            messages.append(st.answered("StopTransaction", stop, {}))
        fault = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
        messages.append(st.answered("StatusNotification", fault, {}))
    return messages


async def test_every_report_runs_and_adds_up(store: Store) -> None:
    await project_messages(store, day_of_sessions())
    everything = ReportFilters()
    energy = await run_report(store, "energy-per-station-per-day", everything)
    assert [(r["station_id"], r["day"], r["sessions"], r["energy_wh"]) for r in energy] == [
        ("CP1", dt.date(2026, 1, 1), 2, 2000.0),
        ("CP2", dt.date(2026, 1, 1), 2, 4000.0),
    ]
    hours = await run_report(store, "sessions-per-hour", everything)
    assert [(r["hour"], r["sessions"], r["energy_wh"]) for r in hours] == [
        (8, 2, 3000.0),
        (9, 2, 3000.0),
    ]
    window = ReportFilters(
        since=dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC),
        until=dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC),
    )
    use = await run_report(store, "connector-utilisation", window)
    assert [
        (r["station_id"], r["connector_id"], r["busy_s"], r["window_s"], r["utilisation"])
        for r in use
    ] == [
        ("CP1", 1, 3600.0, 7200.0, 0.5),
        ("CP2", 1, 3600.0, 7200.0, 0.5),
    ]
    durations = await run_report(store, "average-session-duration", ReportFilters(station_id="CP2"))
    assert [(r["station_id"], r["sessions"], r["average_duration_s"]) for r in durations] == [
        ("CP2", 2, 1800.0)
    ]
    faults = await run_report(store, "faults", everything)
    assert [(r["model"], r["error_code"], r["faults"], r["stations"]) for r in faults] == [
        ("Fast", "GroundFailure", 1, 1),
        ("Slow", "GroundFailure", 1, 1),
    ]
    silent = await run_report(store, "silent-stations", ReportFilters(minutes=5))
    assert [(r["station_id"], r["connected"]) for r in silent] == [("CP1", True), ("CP2", True)]
    assert await run_report(store, "silent-stations", ReportFilters(minutes=10**8)) == []
    assert set(REPORTS) == {
        "energy-per-station-per-day",
        "sessions-per-hour",
        "connector-utilisation",
        "average-session-duration",
        "faults",
        "silent-stations",
    }


async def test_unknown_report(store: Store) -> None:
    with pytest.raises(queries.QueryError):
        await run_report(store, "nope", ReportFilters())


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO events (station_id) VALUES ('x')",
        "DROP TABLE events",
        "SELECT 1; DROP TABLE events",
        "ALTER TABLE events DELETE WHERE 1",
        "",
        "-- just a comment",
    ],
)
def test_read_only_refuses_anything_but_reads(sql: str) -> None:
    with pytest.raises(queries.QueryError):
        queries.check_read_only(sql)


async def test_read_only_runs_reads_and_the_engine_refuses_writes(store: Store) -> None:
    await project_messages(store, day_of_sessions())
    names, rows = await queries.read_only_query(
        store,
        "/* c */ SELECT station_id, count() AS n FROM events GROUP BY ALL ORDER BY ALL",
    )
    assert names == ["station_id", "n"]
    assert rows == [("CP1", 13), ("CP2", 13)]
    for sql in ("SHOW TABLES", "DESCRIBE TABLE events", "EXPLAIN SELECT 1", "WITH 1 AS x SELECT x"):
        await queries.read_only_query(store, sql)
    with pytest.raises(Exception, match="readonly"):
        # past the statement check, the engine's readonly setting still refuses a write
        await store.read_only_query("INSERT INTO events (station_id) SELECT 'x'")
    # and the store's own session is unaffected
    await store.command("CREATE TABLE scratch (a UInt8) ENGINE = Memory")


_UTILISATION_BEFORE = (
    ", {start} AS w_start, {end} AS w_end "
    "SELECT station_id, evse_id, connector_id, count() AS sessions, "
    "sum(greatest(0, dateDiff('millisecond', greatest(started_at, w_start), "
    "least(ifNull(stopped_at, now64(3, 'UTC')), w_end)))) / 1000 AS busy_s, "
    "dateDiff('millisecond', w_start, w_end) / 1000 AS window_s, "
    "if(window_s > 0, busy_s / window_s, 0) AS utilisation "
    "FROM transactions {where}{joiner} started_at IS NOT NULL "
    "GROUP BY station_id, evse_id, connector_id ORDER BY station_id, evse_id, connector_id"
)
"""The report as it was (the whole view evaluated twice): the one-pass query must agree."""


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        (None, dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 1, 7, 30, tzinfo=dt.UTC), None),
    ],
)
async def test_connector_utilisation_agrees_with_the_two_pass_query(
    store: Store, since: dt.datetime | None, until: dt.datetime | None
) -> None:
    messages = day_of_sessions()
    late = ScriptedStation("CP3", session_id="s3")
    # an active transaction (no stop) and, earlier than any start, an incomplete one (a stop
    # for an id never started): the default window starts at its time
    start = {"connectorId": 2, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T08:15:00Z"}
    messages.append(late.answered("StartTransaction", start, {"transactionId": 99}))
    stop = {"transactionId": 77, "meterStop": 5, "timestamp": "2026-01-01T07:00:00Z"}
    messages.append(late.answered("StopTransaction", stop, {}))
    await project_messages(store, messages)
    filters = ReportFilters(since=since, until=until)
    params: dict[str, object] = {}
    conds = []
    if since is not None:
        conds.append("sort_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')")
        params["since"] = int(since.timestamp() * 1000)
    if until is not None:
        conds.append("sort_at < fromUnixTimestamp64Milli({until:Int64}, 'UTC')")
        params["until"] = int(until.timestamp() * 1000)
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    before = queries.transactions_cte(False) + _UTILISATION_BEFORE.format(
        start="fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
        if since
        else "(SELECT min(sort_at) FROM transactions)",
        end="fromUnixTimestamp64Milli({until:Int64}, 'UTC')" if until else "now64(3, 'UTC')",
        where=where,
        joiner=" AND" if where else " WHERE",
    )
    expected = await store.query(before, params)
    found = await run_report(store, "connector-utilisation", filters)
    assert expected  # the case has rows
    keys = ("station_id", "evse_id", "connector_id", "sessions")
    assert [tuple(r[k] for k in keys) for r in found] == [
        tuple(r[k] for k in keys) for r in expected
    ]
    for got, want in zip(found, expected, strict=True):  # now64() moves between the queries
        assert got["busy_s"] == pytest.approx(want["busy_s"], abs=5.0)
        assert got["window_s"] == pytest.approx(want["window_s"], abs=5.0)
        assert got["utilisation"] == pytest.approx(want["utilisation"], abs=1e-3)
