"""Read models over the projection tables: what the operator API and the CLI ask.

Every read goes through ``FINAL`` or an aggregation, so rows written twice (redelivery, replay,
a crash between insert and ack) are never returned twice. Times in and out are aware UTC
datetimes; pages are newest first with an opaque ``cursor``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from streams.store import StatementError, Store

MAX_LIMIT: Final = 1000


class QueryError(ValueError):
    """A bad filter, cursor or statement (the API answers 400)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def _ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def parse_time(text: str | None) -> dt.datetime | None:
    """An API/CLI time filter: RFC 3339 (naive = UTC) or a date."""
    if text is None or text == "":
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise QueryError(f"not a time: {text!r}") from err
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


_I64 = (-(2**63), 2**63 - 1)
_U32 = (0, 2**32 - 1)
_U64 = (0, 2**63 - 1)


def _decode_cursor(cursor: str, kinds: tuple[tuple[int, int] | None, ...]) -> list[Any]:
    """A cursor's values, checked: a ``(low, high)`` kind is an integer in that range, None a
    string. Anything else is a QueryError (400), never an engine error."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as err:
        raise QueryError("bad cursor") from err
    if not isinstance(values, list) or len(values) != len(kinds):
        raise QueryError("bad cursor")
    for value, kind in zip(values, kinds, strict=True):
        if kind is None:
            ok = isinstance(value, str)
        else:
            ok = type(value) is int and kind[0] <= value <= kind[1]
        if not ok:
            raise QueryError("bad cursor")
    return values


def _limit(limit: int | None, default: int = 100) -> int:
    value = default if limit is None else limit
    if not 1 <= value <= MAX_LIMIT:
        raise QueryError(f"limit must be 1..{MAX_LIMIT}")
    return value


@dataclass(frozen=True, slots=True)
class Filters:
    """What a listing is narrowed to: equality on columns, a time range on one column, and
    the cursor's row-value comparison (all optional)."""

    equals: tuple[tuple[str, str | None], ...] = ()
    """(column, value): ``column = value``; None or empty: not filtered."""
    time_column: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    cursor: tuple[str, dict[str, Any]] | None = None
    """(condition, its parameters), built by the listing from its decoded cursor."""


def _where(filters: Filters, params: dict[str, Any]) -> str:
    """The ``WHERE …`` clause of ``filters`` ("" when nothing filters); their parameters are
    added to ``params``. The one place listings build their conditions."""
    conds: list[str] = []
    for column, value in filters.equals:
        if value:
            conds.append(f"{column} = {{{column}:String}}")
            params[column] = value
    for name, op, bound in (("since", ">=", filters.since), ("until", "<", filters.until)):
        if bound is not None:
            conds.append(
                f"{filters.time_column} {op} fromUnixTimestamp64Milli({{{name}:Int64}}, 'UTC')"
            )
            params[name] = _ms(bound)
    if filters.cursor is not None:
        cond, cursor_params = filters.cursor
        conds.append(cond)
        params.update(cursor_params)
    return f"WHERE {' AND '.join(conds)}" if conds else ""


# -- transactions ---------------------------------------------------------------------------

_TRANSACTIONS: Final = """
WITH
ids AS (
    SELECT corr, any(transaction_id) AS tid
    FROM transaction_start_ids
    WHERE 1 {facts_where}
    GROUP BY corr
),
grouped AS (
    SELECT
        station_id,
        tx,
        anyMerge(ocpp_version_agg) AS ocpp_version,
        anyMerge(evse_id_agg) AS evse_id,
        anyMerge(connector_id_agg) AS connector_id,
        argMinIfMerge(id_token_agg) AS id_token,
        maxMerge(has_start_agg) > 0 AS has_start,
        maxMerge(has_stop_agg) > 0 AS has_stop,
        minIfMerge(start_at_agg) AS start_at,
        maxIfMerge(stop_at_agg) AS stop_at,
        minMerge(first_at_agg) AS first_at,
        argMinIfMerge(meter_start_wh_agg) AS meter_start_wh,
        argMaxIfMerge(meter_stop_wh_agg) AS meter_stop_wh,
        argMaxIfMerge(stop_reason_agg) AS stop_reason,
        maxMerge(offline_agg) AS offline
    FROM (
        SELECT station_id, transaction_id AS tx, {states}
        FROM transaction_agg WHERE transaction_id != '' {facts_where}
        UNION ALL
        SELECT a.station_id AS station_id, ids.tid AS tx, {states}
        FROM (SELECT * FROM transaction_agg WHERE transaction_id = '' {facts_where}) AS a
        INNER JOIN ids ON a.corr_key = ids.corr
    )
    GROUP BY station_id, tx
),
transactions AS (
    SELECT
        tx AS transaction_id,
        station_id,
        ocpp_version,
        evse_id,
        connector_id,
        id_token,
        if(has_start, start_at, NULL) AS started_at,
        if(has_stop, stop_at, NULL) AS stopped_at,
        meter_start_wh,
        meter_stop_wh,
        if(meter_start_wh IS NULL OR meter_stop_wh IS NULL, NULL,
           meter_stop_wh - meter_start_wh) AS energy_wh,
        stop_reason,
        multiIf(has_start AND has_stop, 'completed', has_start, 'active', 'incomplete') AS status,
        toBool(offline) AS offline,
        if(has_start, start_at, first_at) AS sort_at
    FROM grouped
)
"""

TRANSACTION_COLUMNS: Final = (
    "transaction_id, station_id, ocpp_version, evse_id, connector_id, id_token, started_at, "
    "stopped_at, meter_start_wh, meter_stop_wh, energy_wh, stop_reason, status, offline"
)


_STATES: Final = ", ".join(
    f"{name}_agg"
    for name in (
        "ocpp_version",
        "evse_id",
        "connector_id",
        "id_token",
        "has_start",
        "has_stop",
        "start_at",
        "stop_at",
        "first_at",
        "meter_start_wh",
        "meter_stop_wh",
        "stop_reason",
        "offline",
    )
)
"""The partial aggregates of ``transaction_agg`` (schema 008) that the view merges."""


def transactions_cte(station_filter: bool) -> str:
    """The ``transactions`` view as a WITH clause (reports build on it). Transactions known
    by id are merged straight from ``transaction_agg``; only the 1.6 starts kept under their
    correlation go through the join with ``transaction_start_ids``."""
    where = "AND station_id = {station_id:String}" if station_filter else ""
    return _TRANSACTIONS.replace("{facts_where}", where).replace("{states}", _STATES)


async def list_transactions(
    store: Store,
    *,
    station_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page:
    """Newest first (start time, or first known time of an incomplete transaction)."""
    size = _limit(limit)
    params: dict[str, Any] = {"limit": size + 1}
    if station_id:
        params["station_id"] = station_id  # filtered inside the view (transactions_cte)
    if status and status not in ("active", "completed", "incomplete"):
        raise QueryError("status is active, completed or incomplete")
    after = None
    if cursor:
        at_ms, c_station, c_tx = _decode_cursor(cursor, (_I64, None, None))
        after = (
            "(sort_at, station_id, transaction_id) < "
            "(fromUnixTimestamp64Milli({c_at:Int64}, 'UTC'), {c_station:String}, {c_tx:String})",
            {"c_at": int(at_ms), "c_station": str(c_station), "c_tx": str(c_tx)},
        )
    where = _where(
        Filters((("status", status),), "sort_at", since, until, after),
        params,
    )
    sql = (
        transactions_cte(bool(station_id))
        + f"SELECT {TRANSACTION_COLUMNS}, sort_at FROM transactions {where} "
        "ORDER BY sort_at DESC, station_id DESC, transaction_id DESC LIMIT {limit:UInt32}"
    )
    rows = await store.query(sql, params)
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = _encode_cursor(
            [_ms(last["sort_at"]), last["station_id"], last["transaction_id"]]
        )
    for row in rows:
        del row["sort_at"]
    return Page(rows, next_cursor)


async def get_transaction(
    store: Store, transaction_id: str, station_id: str | None = None
) -> dict[str, Any] | None:
    """One transaction with its meter values (``station_id`` narrows an id two stations use)."""
    params: dict[str, Any] = {"tx": transaction_id}
    if station_id:
        params["station_id"] = station_id
    sql = (
        transactions_cte(bool(station_id))
        + f"SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE transaction_id = {{tx:String}} "
        "ORDER BY sort_at DESC LIMIT 1"
    )
    rows = await store.query(sql, params)
    if not rows:
        return None
    found = rows[0]
    meter = await list_meter_values(
        store,
        station_id=found["station_id"],
        transaction_id=transaction_id,
        limit=MAX_LIMIT,
        oldest_first=True,
    )
    found["meter_values"] = meter.items
    return found


# -- meter values ---------------------------------------------------------------------------

_METER_COLUMNS: Final = (
    "station_id, sampled_at, evse_id, connector_id, transaction_id, measurand, phase, location, "
    "context, unit, multiplier, raw_value, value, base_unit, value_base"
)


async def list_meter_values(
    store: Store,
    *,
    station_id: str | None = None,
    transaction_id: str | None = None,
    measurand: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    oldest_first: bool = False,
) -> Page:
    size = _limit(limit)
    params: dict[str, Any] = {"limit": size + 1}
    order = "ASC" if oldest_first else "DESC"
    after = None
    if cursor:
        at_ms, c_seq, c_station = _decode_cursor(cursor, (_I64, _U64, None))
        op = ">" if oldest_first else "<"
        after = (
            f"(sampled_at, version, station_id) {op} "
            "(fromUnixTimestamp64Milli({c_at:Int64}, 'UTC'), {c_seq:UInt64}, {c_station:String})",
            {"c_at": int(at_ms), "c_seq": int(c_seq), "c_station": str(c_station)},
        )
    equals = (
        ("station_id", station_id),
        ("transaction_id", transaction_id),
        ("measurand", measurand),
    )
    where = _where(Filters(equals, "sampled_at", since, until, after), params)
    sql = (
        f"SELECT {_METER_COLUMNS}, version FROM meter_values FINAL {where} "
        f"ORDER BY sampled_at {order}, version {order}, station_id {order} LIMIT {{limit:UInt32}}"
    )
    rows = await store.query(sql, params)
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = _encode_cursor([_ms(last["sampled_at"]), last["version"], last["station_id"]])
    for row in rows:
        del row["version"]
    return Page(rows, next_cursor)


# -- events ---------------------------------------------------------------------------------


def payload_of(message_type: int, raw: str) -> Any:
    """The JSON payload of an OCPP-J frame: CALL [2,id,action,p], CALLRESULT [3,id,p],
    CALLERROR [4,id,code,description,details] as an object; a command event's record as is;
    None otherwise."""
    if not raw:
        return None
    try:
        frame = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(frame, dict):  # not a frame: a command record (kind ``command``)
        return frame
    if not isinstance(frame, list):
        return None
    if message_type in (2, 6) and len(frame) >= 4:
        return frame[3]
    if message_type == 3 and len(frame) >= 3:
        return frame[2]
    if message_type in (4, 5) and len(frame) >= 5:
        return {"errorCode": frame[2], "errorDescription": frame[3], "errorDetails": frame[4]}
    return None


async def list_events(
    store: Store,
    *,
    station_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    action: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page:
    size = _limit(limit)
    params: dict[str, Any] = {"limit": size + 1}
    after = None
    if cursor:
        c_seq, c_idx = _decode_cursor(cursor, (_U64, _U32))
        after = (
            "(stream_seq, idx) < ({c_seq:UInt64}, {c_idx:UInt32})",
            {"c_seq": int(c_seq), "c_idx": int(c_idx)},
        )
    equals = (("station_id", station_id), ("action", action))
    where = _where(Filters(equals, "received_at", since, until, after), params)
    sql = (
        "SELECT event_id, station_id, kind, ocpp_version, direction, message_type, unique_id, "
        "action, raw, received_at, session_id, seq, reason, stream_seq, idx "
        f"FROM events FINAL {where} ORDER BY stream_seq DESC, idx DESC LIMIT {{limit:UInt32}}"
    )
    rows = await store.query(sql, params)
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = _encode_cursor([rows[-1]["stream_seq"], rows[-1]["idx"]])
    items = [_event_item(row) for row in rows]
    return Page(items, next_cursor)


def _event_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": row["event_id"],
        "station_id": row["station_id"],
        "kind": row["kind"],
        "ocpp_version": row["ocpp_version"],
        "direction": row["direction"],
        "message_type": int(row["message_type"]),
        "unique_id": row["unique_id"] or None,
        "action": row["action"] or None,
        "payload": payload_of(int(row["message_type"]), row["raw"]),
        "received_at": row["received_at"],
        "session_id": row["session_id"],
        "seq": int(row["seq"]),
        "reason": row["reason"] or None,
    }


# -- station status -------------------------------------------------------------------------


async def station_status(store: Store, station_id: str | None = None) -> list[dict[str, Any]]:
    """Per station: last boot, last seen, connected or not, latest status per EVSE/connector."""
    params: dict[str, Any] = {}
    where = ""
    if station_id:
        where = "WHERE station_id = {station_id:String}"
        params["station_id"] = station_id
    seen = await store.query(
        f"SELECT station_id, max(last_seen_at) AS last_seen_at FROM station_seen {where} "
        "GROUP BY station_id",
        params,
    )
    boots = await store.query(
        "SELECT station_id, argMax(vendor, (at, stream_seq, idx)) AS vendor, "
        "argMax(model, (at, stream_seq, idx)) AS model, "
        "argMax(firmware, (at, stream_seq, idx)) AS firmware, "
        "argMax(serial_number, (at, stream_seq, idx)) AS serial_number, max(at) AS booted_at "
        f"FROM station_boots FINAL {where} GROUP BY station_id",
        params,
    )
    sessions = await store.query(
        "SELECT station_id, argMax(session_id, at) AS session_id, "
        "argMax(event, at) = 'connected' AS connected, max(at) AS changed_at "
        f"FROM station_sessions FINAL {where} GROUP BY station_id",
        params,
    )
    connectors = await store.query(
        "SELECT station_id, evse_id, connector_id, "
        "argMax(status, (at, stream_seq, idx)) AS status, "
        "argMax(error_code, (at, stream_seq, idx)) AS error_code, max(at) AS status_at "
        f"FROM status_notifications FINAL {where} "
        "GROUP BY station_id, evse_id, connector_id ORDER BY station_id, evse_id, connector_id",
        params,
    )
    stations: dict[str, dict[str, Any]] = {}

    def entry(sid: str) -> dict[str, Any]:
        return stations.setdefault(
            sid,
            {
                "station_id": sid,
                "connected": False,
                "last_seen_at": None,
                "boot": None,
                "connectors": [],
            },
        )

    for row in seen:
        entry(row["station_id"])["last_seen_at"] = row["last_seen_at"]
    for row in boots:
        sid = row.pop("station_id")
        entry(sid)["boot"] = row
    for row in sessions:
        entry(row["station_id"])["connected"] = bool(row["connected"])
    for row in connectors:
        sid = row.pop("station_id")
        entry(sid)["connectors"].append(row)
    return [stations[k] for k in sorted(stations)]


# -- read-only SQL --------------------------------------------------------------------------

READ_ONLY_STATEMENTS: Final = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def check_read_only(sql: str) -> str:
    """The statement if it is one read (SELECT/WITH/SHOW/DESCRIBE/EXPLAIN), else QueryError.
    The engine enforces it too (``readonly``), this is the early, readable refusal."""
    text = _COMMENTS.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise QueryError("empty statement")
    if ";" in text:
        raise QueryError("one statement only")
    first = re.split(r"[\s(]", text.lstrip("("), maxsplit=1)[0].upper()
    if first not in READ_ONLY_STATEMENTS:
        raise QueryError(f"read-only queries only ({', '.join(READ_ONLY_STATEMENTS)}): {first}")
    return text


async def read_only_query(
    store: Store, sql: str, parameters: dict[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run an operator's ad-hoc statement with the engine's ``readonly=2`` (reads and
    settings only, no writes, no DDL)."""
    try:
        return await store.read_only_query(check_read_only(sql), parameters)
    except StatementError as err:  # the operator's SQL: a bad request, not a server fault
        raise QueryError(str(err)) from err
