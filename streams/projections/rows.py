"""The rows the folds produce, per table, in the column order of ``streams/schema``. Pure.

Times are integers: ``*_ns`` ticks for ``DateTime64(9)`` columns, ``*_ms`` for ``DateTime64(3)``
(clickhouse-connect writes integers as ticks, exactly and without datetime objects).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

Row = list[Any]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "events": (
        "station_id",
        "received_at",
        "stream_seq",
        "idx",
        "event_id",
        "kind",
        "ocpp_version",
        "direction",
        "message_type",
        "unique_id",
        "action",
        "raw",
        "node_id",
        "session_id",
        "seq",
        "reason",
    ),
    "transaction_facts": (
        "station_id",
        "transaction_id",
        "stream_seq",
        "idx",
        "n",
        "fact",
        "ocpp_version",
        "at",
        "seq_no",
        "offline",
        "evse_id",
        "connector_id",
        "id_token",
        "meter_wh",
        "role",
        "stop_reason",
        "charging_state",
        "corr",
    ),
    "meter_values": (
        "station_id",
        "sampled_at",
        "evse_id",
        "connector_id",
        "transaction_id",
        "measurand",
        "phase",
        "location",
        "context",
        "unit",
        "multiplier",
        "raw_value",
        "value",
        "base_unit",
        "value_base",
        "stream_seq",
        "version",
    ),
    "status_notifications": (
        "station_id",
        "at",
        "stream_seq",
        "idx",
        "evse_id",
        "connector_id",
        "status",
        "error_code",
        "vendor_error_code",
        "info",
    ),
    "station_boots": (
        "station_id",
        "at",
        "stream_seq",
        "idx",
        "vendor",
        "model",
        "firmware",
        "serial_number",
    ),
    "station_sessions": ("station_id", "session_id", "event", "at", "node_id", "reason"),
    "station_seen": ("station_id", "last_seen_at"),
    "poison_events": ("stream_seq", "idx", "subject", "error", "data", "recorded_at"),
}

WHOLE_MESSAGE: Final = 0xFFFF_FFFF
"""``idx`` of a poison row for a stream message that did not decode at all."""


Message = tuple[int, str, bytes, int]
"""A stream message to fold: (stream sequence, subject, data, stored ms)."""


@dataclass(frozen=True, slots=True)
class NativeBlock:
    """Rows of ``table`` (all of :data:`COLUMNS`, in order) already encoded as one ClickHouse
    ``Native`` block by the compiled fold (:mod:`streams.projections.compiled`), with the
    messages they came from: a store that refuses the block gets those folded in Python."""

    table: str
    data: bytes
    rows: int
    messages: tuple[Message, ...]


@dataclass(slots=True)
class Rows:
    """Rows for every table, appended to by the folds; ``extend`` merges another batch.
    ``native``: more rows, as encoded blocks (the compiled fold's)."""

    tables: dict[str, list[Row]] = field(default_factory=lambda: {name: [] for name in COLUMNS})
    native: list[NativeBlock] = field(default_factory=list)

    def add(self, table: str, row: Row) -> None:
        self.tables[table].append(row)

    def extend(self, other: Rows) -> None:
        for name, rows in other.tables.items():
            self.tables[name].extend(rows)
        self.native.extend(other.native)

    def count(self) -> int:
        return sum(len(rows) for rows in self.tables.values()) + sum(b.rows for b in self.native)

    def __len__(self) -> int:
        return self.count()


def int_column(value: Any, bits: int = 32) -> int | None:
    """An optional integer for a signed ``bits`` column: None if absent or not an integer,
    ValueError if it does not fit (the event becomes poison instead of an insert that can
    never succeed and would block the projector)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"{value} does not fit a {bits}-bit column")
    return value


def parse_time_ms(value: object) -> int | None:
    """An OCPP dateTime (RFC 3339; naive taken as UTC) → ms since the epoch, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return int(parsed.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        return None
