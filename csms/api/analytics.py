"""``/api/v1`` analytics over the projections: transactions, events, meter values, station status,
the ready-made reports and read-only SQL. Every handler reads through the ``store`` dependency
(a :class:`streams.store.Store`) that ``csms.api.app.build_app`` provides; the queries live in
:mod:`streams.queries` and :mod:`streams.reports`, shared with the CLI.

Lists answer ``{"items": [...], "next_cursor": "..." | null}``, newest first; pass
``next_cursor`` back as ``cursor`` for the next page. Times are RFC 3339 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from csms.api.problems import ProblemError
from streams import queries
from streams.reports import REPORTS, ReportFilters, run_report
from streams.store import StatementError, StoreError
from streams.store import Store as StoreAdapter

T = TypeVar("T")

Store = NamedDependency[StoreAdapter]
"""The ``store`` dependency: the projections' :class:`streams.store.Store`."""


class QueryRequest(msgspec.Struct, kw_only=True):
    sql: str


class QueryResult(msgspec.Struct, kw_only=True):
    columns: list[str]
    rows: list[list[Any]]


def _time(name: str, text: str | None) -> dt.datetime | None:
    try:
        return queries.parse_time(text)
    except queries.QueryError as err:
        raise ProblemError(400, "bad-filter", f"{name}: {err}") from err


async def _answer(pending: Awaitable[T]) -> T:
    """Bad filters and statements are 400; a store that is away is 503."""
    try:
        return await pending
    except (queries.QueryError, StatementError) as err:
        raise ProblemError(400, "bad-query", str(err)) from err
    except StoreError as err:
        raise ProblemError(503, "store-unavailable", str(err)) from err


@get("/transactions", summary="Transactions, newest first")
async def list_transactions(
    store: Store,
    station_id: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """One row per transaction of any OCPP version; ``status`` active, completed or incomplete
    (an end without a start, a stop for an unknown id)."""
    page = await _answer(
        queries.list_transactions(
            store,
            station_id=station_id,
            since=_time("since", since),
            until=_time("until", until),
            status=status,
            limit=limit,
            cursor=cursor,
        )
    )
    return page.to_json()


@get("/transactions/{transaction_id:str}", summary="One transaction with its meter values")
async def get_transaction(
    store: Store, transaction_id: FromPath[str], station_id: FromQuery[str | None] = None
) -> dict[str, Any]:
    found = await _answer(queries.get_transaction(store, transaction_id, station_id))
    if found is None:
        raise ProblemError(404, "not-found", f"no transaction {transaction_id!r}")
    return found


@get("/events", summary="Raw events (every frame in and out), newest first")
async def list_events(
    store: Store,
    station_id: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    page = await _answer(
        queries.list_events(
            store,
            station_id=station_id,
            since=_time("since", since),
            until=_time("until", until),
            action=action,
            limit=limit,
            cursor=cursor,
        )
    )
    return page.to_json()


@get("/meter-values", summary="Sampled values, newest first, with the value in its base unit")
async def list_meter_values(
    store: Store,
    station_id: FromQuery[str | None] = None,
    transaction_id: FromQuery[str | None] = None,
    measurand: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    page = await _answer(
        queries.list_meter_values(
            store,
            station_id=station_id,
            transaction_id=transaction_id,
            measurand=measurand,
            since=_time("since", since),
            until=_time("until", until),
            limit=limit,
            cursor=cursor,
        )
    )
    return page.to_json()


@get("/station-status", summary="Latest status per station, EVSE and connector")
async def station_status(store: Store, station_id: FromQuery[str | None] = None) -> dict[str, Any]:
    """Last boot (vendor, model, firmware), last seen, connected, latest connector status."""
    return {"items": await _answer(queries.station_status(store, station_id))}


@get("/reports", summary="The ready-made reports")
async def list_reports() -> dict[str, Any]:
    return {"items": sorted(REPORTS)}


@get("/reports/{name:str}", summary="A ready-made report")
async def report(
    store: Store,
    name: FromPath[str],
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    station_id: FromQuery[str | None] = None,
    minutes: FromQuery[int] = 60,
) -> dict[str, Any]:
    if name not in REPORTS:
        raise ProblemError(404, "not-found", f"no report {name!r}; reports: {', '.join(REPORTS)}")
    filters = ReportFilters(_time("since", since), _time("until", until), station_id, minutes)
    return {"name": name, "items": await _answer(run_report(store, name, filters))}


@post("/query", summary="Read-only SQL (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)", status_code=200)
async def query(store: Store, data: JSONBody[QueryRequest]) -> QueryResult:
    """What ``csms query --api`` sends while ``csms serve`` holds the embedded engine."""
    columns, rows = await _answer(queries.read_only_query(store, data.sql))
    return QueryResult(columns=columns, rows=[list(row) for row in rows])


router = Router(
    path="/api/v1",
    route_handlers=[
        list_transactions,
        get_transaction,
        list_events,
        list_meter_values,
        station_status,
        list_reports,
        report,
        query,
    ],
    tags=["analytics"],
)
