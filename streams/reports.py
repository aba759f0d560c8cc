"""The ready-made reports: one SQL each over the projection tables, as API endpoints
(``GET /api/v1/reports/{name}``) and CLI (``csms report <name>``).

| name | rows |
|---|---|
| ``energy-per-station-per-day`` | station_id, day, sessions, energy_wh (by transaction start day) |
| ``sessions-per-hour`` | hour (0-23 UTC), sessions, energy_wh |
| ``connector-utilisation`` | station_id, evse_id, connector_id, sessions, busy_s, window_s, |
| | utilisation (busy_s / window_s) |
| ``average-session-duration`` | station_id, sessions, average_duration_s (completed sessions) |
| ``faults`` | vendor, model, firmware, error_code, faults, stations (Faulted or an error code) |
| ``silent-stations`` | station_id, last_seen_at, silent_s, connected (silent > ``minutes``) |

Filters: ``since``/``until`` (UTC; on the transaction start, the status time), ``station_id``,
``minutes`` (silent-stations, default 60).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from streams.queries import QueryError, transactions_cte
from streams.store import Store


@dataclass(frozen=True, slots=True)
class ReportFilters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    station_id: str | None = None
    minutes: int = 60


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _window(filters: ReportFilters, column: str, params: dict[str, Any], conds: list[str]) -> None:
    if filters.since is not None:
        conds.append(f"{column} >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')")
        params["since"] = _ms(filters.since)
    if filters.until is not None:
        conds.append(f"{column} < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC')")
        params["until"] = _ms(filters.until)


def _transactions(filters: ReportFilters) -> tuple[str, dict[str, Any], str]:
    """(WITH clause, params, WHERE over ``transactions``)."""
    params: dict[str, Any] = {}
    conds: list[str] = []
    if filters.station_id:
        params["station_id"] = filters.station_id
    _window(filters, "sort_at", params, conds)
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    return transactions_cte(bool(filters.station_id)), params, where


async def energy_per_station_per_day(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    cte, params, where = _transactions(f)
    return await store.query(
        cte + "SELECT station_id, toDate(sort_at) AS day, count() AS sessions, "
        "sum(ifNull(energy_wh, 0)) AS energy_wh "
        f"FROM transactions {where} GROUP BY station_id, day ORDER BY day, station_id",
        params,
        settings=IN_ORDER,
    )


IN_ORDER: Final = {"optimize_aggregation_in_order": 1}
"""Aggregate in transaction_agg's key order where the plan allows: the energy report over
1.2 M transactions, median of 5 engine runs 0.84 s -> 0.75 s (busy machine)."""


async def sessions_per_hour(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    cte, params, where = _transactions(f)
    return await store.query(
        cte + "SELECT toHour(sort_at) AS hour, count() AS sessions, "
        "sum(ifNull(energy_wh, 0)) AS energy_wh "
        f"FROM transactions {where} GROUP BY hour ORDER BY hour",
        params,
    )


async def connector_utilisation(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    """Share of the window each connector spent in a transaction (active ones count to now).
    The window is since..until, by default the first known start..now.

    One pass over ``transactions``: each connector's busy time and the earliest ``sort_at``
    of its rows, the window's default start being the least of those (a window function),
    instead of a second evaluation of the whole view for ``min(sort_at)``. A counted
    transaction has started, so its ``sort_at`` is its start and never before the window's
    start: the busy time runs from the start itself."""
    cte, params, where = _transactions(f)
    start = (
        "fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
        if f.since is not None
        else "min(first_sort_at) OVER ()"
    )
    end = (
        "fromUnixTimestamp64Milli({until:Int64}, 'UTC')"
        if f.until is not None
        else "now64(3, 'UTC')"
    )
    return await store.query(
        cte + f", {end} AS w_end "
        "SELECT station_id, evse_id, connector_id, sessions, busy_ms / 1000 AS busy_s, "
        "dateDiff('millisecond', w_start, w_end) / 1000 AS window_s, "
        "if(window_s > 0, busy_s / window_s, 0) AS utilisation "
        "FROM ("
        f"SELECT station_id, evse_id, connector_id, sessions, busy_ms, {start} AS w_start "
        "FROM ("
        "SELECT station_id, evse_id, connector_id, "
        "countIf(started_at IS NOT NULL) AS sessions, "
        "sumIf(greatest(0, dateDiff('millisecond', started_at, "
        "least(ifNull(stopped_at, now64(3, 'UTC')), w_end))), started_at IS NOT NULL) AS busy_ms, "
        "min(sort_at) AS first_sort_at "
        f"FROM transactions {where} "
        "GROUP BY station_id, evse_id, connector_id"
        ")"
        ") WHERE sessions > 0 "
        "ORDER BY station_id, evse_id, connector_id",
        params,
    )


async def average_session_duration(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    cte, params, where = _transactions(f)
    joiner = " AND" if where else " WHERE"
    return await store.query(
        cte + "SELECT station_id, count() AS sessions, "
        "avg(dateDiff('millisecond', started_at, stopped_at)) / 1000 AS average_duration_s "
        f"FROM transactions {where}{joiner} status = 'completed' "
        "GROUP BY station_id ORDER BY station_id",
        params,
    )


async def faults(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    """Faults (status Faulted, or a 1.6 error code other than NoError) by the station's latest
    reported vendor, model and firmware."""
    params: dict[str, Any] = {}
    conds = ["(status = 'Faulted' OR (error_code != '' AND error_code != 'NoError'))"]
    if f.station_id:
        conds.append("station_id = {station_id:String}")
        params["station_id"] = f.station_id
    _window(f, "at", params, conds)
    return await store.query(
        "WITH boots AS (SELECT station_id, argMax(vendor, (at, stream_seq, idx)) AS vendor, "
        "argMax(model, (at, stream_seq, idx)) AS model, "
        "argMax(firmware, (at, stream_seq, idx)) AS firmware "
        "FROM station_boots FINAL GROUP BY station_id) "
        "SELECT b.vendor AS vendor, b.model AS model, b.firmware AS firmware, "
        "if(s.error_code IN ('', 'NoError'), s.status, s.error_code) AS error_code, "
        "count() AS faults, uniqExact(s.station_id) AS stations "
        f"FROM (SELECT * FROM status_notifications FINAL WHERE {' AND '.join(conds)}) AS s "
        "LEFT JOIN boots AS b ON s.station_id = b.station_id "
        "GROUP BY vendor, model, firmware, error_code "
        "ORDER BY faults DESC, vendor, model, firmware, error_code",
        params,
    )


async def silent_stations(store: Store, f: ReportFilters) -> list[dict[str, Any]]:
    if not 0 <= f.minutes < 2**32:
        raise QueryError("minutes must be 0..4294967295")
    params: dict[str, Any] = {"minutes": f.minutes}
    station = ""
    if f.station_id:
        station = "AND station_id = {station_id:String}"
        params["station_id"] = f.station_id
    return await store.query(
        "WITH conn AS (SELECT station_id, argMax(event, at) = 'connected' AS connected "
        "FROM station_sessions FINAL GROUP BY station_id) "
        "SELECT s.station_id AS station_id, s.last_seen_at AS last_seen_at, "
        "dateDiff('second', s.last_seen_at, now64(9, 'UTC')) AS silent_s, "
        "toBool(ifNull(c.connected, 0)) AS connected "
        "FROM (SELECT station_id, max(last_seen_at) AS last_seen_at FROM station_seen "
        f"WHERE 1 {station} GROUP BY station_id) AS s "
        "LEFT JOIN conn AS c ON s.station_id = c.station_id "
        "WHERE s.last_seen_at < now64(9, 'UTC') - toIntervalMinute({minutes:UInt32}) "
        "ORDER BY s.last_seen_at",
        params,
    )


Report = Callable[[Store, ReportFilters], Awaitable[list[dict[str, Any]]]]

REPORTS: Final[dict[str, Report]] = {
    "energy-per-station-per-day": energy_per_station_per_day,
    "sessions-per-hour": sessions_per_hour,
    "connector-utilisation": connector_utilisation,
    "average-session-duration": average_session_duration,
    "faults": faults,
    "silent-stations": silent_stations,
}


async def run_report(store: Store, name: str, filters: ReportFilters) -> list[dict[str, Any]]:
    report = REPORTS.get(name)
    if report is None:
        raise QueryError(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
    return await report(store, filters)
