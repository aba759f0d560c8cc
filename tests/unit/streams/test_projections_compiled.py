"""The compiled fold (``csms._core.fold_exchanges`` through
``streams.projections.compiled``) against the Python fold, the reference: on generated version 2
exchanges (the gateway's shape, then every field mutated into unusual types, ranges and forms)
the rows of every table are the same, whichever part folds which message; what the compiled
fold declines is folded in Python. Its ``Native`` blocks are decoded here and also inserted
into the real engine."""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from csms import _core  # noqa: TID251 (the compiled fold itself is under test)
from streams import schema
from streams.projections.compiled import EVENT_COLUMNS, FACT_COLUMNS
from streams.projections.projector import (
    NATIVE_INSERT_SETTINGS,
    Projector,
    fold_batch,
    fold_batch_fast,
    write_rows,
)
from streams.projections.rows import COLUMNS, NativeBlock, Row, Rows
from streams.store import StatementError, Store
from tests.chdb_engine import engine_url, fresh_database

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NS = int(T0.timestamp() * 1e9)


# -- a decoder of the blocks (the types the compiled fold writes) ------------------------------
def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _leb128(data, at)
    return data[at : at + size].decode(), at + size


_FIXED = {"UInt64": "<Q", "UInt32": "<I", "UInt8": "<B", "Int64": "<q", "Int32": "<i"}
_FIXED |= {"Float64": "<d"}


def decode_native(data: bytes) -> tuple[list[str], list[Row]]:
    """Every block of a ``Native`` stream: (column names, rows)."""
    names: list[str] = []
    rows: list[Row] = []
    at = 0
    while at < len(data):
        ncols, at = _leb128(data, at)
        nrows, at = _leb128(data, at)
        columns: list[list[Any]] = []
        names = []
        for _ in range(ncols):
            name, at = _string(data, at)
            kind, at = _string(data, at)
            names.append(name)
            nullable = kind.startswith("Nullable(")
            base = kind[len("Nullable(") : -1] if nullable else kind
            nulls = [False] * nrows
            if nullable:
                nulls = [b == 1 for b in data[at : at + nrows]]
                at += nrows
            values: list[Any] = []
            for _ in range(nrows):
                if base == "String":
                    value, at = _string(data, at)
                else:
                    fmt = "<q" if base.startswith("DateTime64") else _FIXED[base]
                    (value,) = struct.unpack_from(fmt, data, at)
                    at += struct.calcsize(fmt)
                values.append(value)
            columns.append([None if null else v for v, null in zip(values, nulls, strict=True)])
        rows += [list(r) for r in zip(*columns, strict=True)]
    return names, rows


def all_rows(rows: Rows) -> dict[str, list[Row]]:
    """Every table's rows, the blocks' decoded."""
    out = {table: list(r) for table, r in rows.tables.items()}
    for block in rows.native:
        names, decoded = decode_native(block.data)
        assert tuple(names) == COLUMNS[block.table]
        assert len(decoded) == block.rows
        out[block.table] += decoded
    return out


def canonical(tables: dict[str, list[Row]]) -> dict[str, list[str]]:
    return {t: sorted(repr(r) for r in rows) for t, rows in tables.items()}


def assert_same(messages: list[tuple[int, str, bytes, int]]) -> Rows:
    fast = fold_batch_fast(messages)
    assert canonical(all_rows(fast)) == canonical(fold_batch(messages).tables)
    return fast


# -- generated exchanges ------------------------------------------------------------------------
def exchange(
    payload: Any = None,
    *,
    action: str = "MeterValues",
    version: str = "1.6",
    call: bytes | None = None,
    **fields: Any,
) -> dict[str, Any]:
    uid = "m1"
    frame = call if call is not None else json.dumps([2, uid, action, payload]).encode()
    return {
        "type": "csms.exchange",
        "version": 2,
        "node_id": "n1",
        "session_id": "s1",
        "station_id": "CP1",
        "ocpp_version": version,
        "seq": 3,
        "unique_id": uid,
        "action": action,
        "call_at_ns": NS,
        "answer_type": 3,
        "answer_at_ns": NS + 1_000_000,
        "call": msgspec.Raw(frame),
        "answer": msgspec.Raw(b'[3,"m1",{}]'),
    } | fields


def encode(x: dict[str, Any]) -> bytes:
    return msgspec.json.encode(x)


NAIVE_MIN = dt.datetime(1960, 1, 1)  # noqa: DTZ001 (hypothesis takes naive bounds)
NAIVE_MAX = dt.datetime(2300, 1, 1)  # noqa: DTZ001
USUAL_MIN = dt.datetime(2020, 1, 1)  # noqa: DTZ001
USUAL_MAX = dt.datetime(2030, 1, 1)  # noqa: DTZ001
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.just([]),
    st.just({}),
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times in eight, else an odd value."""
    return st.integers(0, 7).flatmap(lambda i: good if i else ODD)


NUMBER_TEXT = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.floats(allow_nan=False).map(repr),
    st.sampled_from(["1e400", "-0", "1.", ".5", "1_0", " 1", "inf", "NaN", "abc", "?", "", "+2"]),
    st.text(max_size=5),
)
TIMES = st.one_of(
    st.datetimes(min_value=USUAL_MIN, max_value=USUAL_MAX).map(lambda d: d.isoformat() + "Z"),
    st.datetimes(min_value=NAIVE_MIN, max_value=NAIVE_MAX).flatmap(
        lambda d: st.sampled_from(
            [
                d.isoformat(),
                d.isoformat(timespec="milliseconds") + "Z",
                d.isoformat(timespec="seconds") + "+05:30",
                d.isoformat(timespec="microseconds") + "-02:00",
                d.isoformat() + "Z",
                d.isoformat(sep=" ") + "Z",
            ]
        )
    ),
    st.sampled_from(["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "x", "", "2026-01-01"]),
)
SAMPLED = st.fixed_dictionaries(
    {},
    optional={
        "value": mostly(NUMBER_TEXT),
        "measurand": mostly(st.sampled_from(["Energy.Active.Import.Register", "Voltage", ""])),
        "phase": mostly(st.sampled_from(["", "L1"])),
        "unit": mostly(st.sampled_from(["Wh", "kWh", "W", "", "Celcius"])),
        "context": mostly(
            st.sampled_from(["Transaction.Begin", "Transaction.End", "Sample.Clock", ""])
        ),
        "location": st.sampled_from(["Outlet", "EV"]),
    },
)
METER_VALUE = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "timestamp": mostly(TIMES),
            "sampledValue": mostly(st.lists(SAMPLED, max_size=4)),
        },
    ),
)
PAYLOAD = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "connectorId": mostly(st.integers(-(2**40), 2**40)),
            "transactionId": mostly(
                st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(), st.text(max_size=4))
            ),
            "meterValue": mostly(st.lists(METER_VALUE, max_size=3)),
        },
    ),
)
READINGS = st.fixed_dictionaries(  # the gateway's usual 1.6 MeterValues, values varied
    {
        "transactionId": st.one_of(st.integers(0, 10**6), st.text(max_size=3)),
        "meterValue": st.lists(
            st.fixed_dictionaries(
                {
                    "timestamp": TIMES,
                    "sampledValue": st.lists(
                        st.fixed_dictionaries(
                            {"value": NUMBER_TEXT},
                            optional={
                                "measurand": st.sampled_from(
                                    ["Energy.Active.Import.Register", "", "Voltage"]
                                ),
                                "phase": st.sampled_from(["", "L1"]),
                                "unit": st.sampled_from(["Wh", "kWh", "W", ""]),
                                "context": st.sampled_from(
                                    ["Transaction.Begin", "Transaction.End", "Sample.Clock", ""]
                                ),
                            },
                        ),
                        max_size=4,
                    ),
                }
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={"connectorId": st.integers(0, 10)},
)
ENVELOPE_CHANGES: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.sampled_from([1, 3, "2"]),
            "seq": st.sampled_from([-1, 2**64 - 1, 2**64, 1.5]),
            "call_at_ns": st.sampled_from([-5, 2**63, 0, "1"]),
            "answer_type": st.sampled_from([4, 255, 256, -1]),
            "extra": st.just(1),
            "station_id": st.text(max_size=5),
            "unique_id": st.one_of(st.text(max_size=3), st.none()),
            "type": st.just("csms.other"),
        },
    ),
)


MESSAGE: st.SearchStrategy[tuple[Any, str, str, dict[str, Any], bool]] = st.one_of(
    st.tuples(
        PAYLOAD,
        st.sampled_from(["MeterValues", "Heartbeat", "StartTransaction", "DataTransfer"]),
        st.sampled_from(["1.6", "2.0.1"]),
        ENVELOPE_CHANGES,
        st.booleans(),
    ),
    st.tuples(READINGS, st.just("MeterValues"), st.just("1.6"), st.just({}), st.just(False)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(MESSAGE, min_size=1, max_size=6))
def test_the_compiled_fold_gives_the_python_rows(
    payloads: list[tuple[Any, str, str, dict[str, Any], bool]],
) -> None:
    messages = []
    for i, (payload, action, version, changes, spaced) in enumerate(payloads):
        x = exchange(payload, action=action, version=version) | changes
        data = encode(x)
        if spaced:  # another writer's layout: spaces, and the frames re-encoded
            data = json.dumps(json.loads(data), indent=1).encode()
            if data.startswith(b"{\n"):
                data = b'{"type":"csms.exchange", ' + data[2:].replace(
                    b'"type": "csms.exchange",', b"", 1
                )
        messages.append((i + 1, "s", data, 7))
    fast = assert_same(messages)
    blocks = {b.table: b for b in fast.native}
    event(f"compiled blocks: {sorted(blocks)}")
    facts = blocks["transaction_facts"].rows if "transaction_facts" in blocks else 0
    event(
        f"compiled facts: {min(facts, 5)}{'+' if facts >= 5 else ''}"
    )  # --hypothesis-show-statistics: the coverage


def meter_16(m: int, value: str = "1.5", **extra: Any) -> dict[str, Any]:
    at = (T0 + dt.timedelta(minutes=m)).isoformat().replace("+00:00", "Z")
    sampled = [
        {"value": value, "unit": "kWh", "context": "Sample.Periodic"},
        {"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
    ]
    return {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [{"timestamp": at, "sampledValue": sampled}],
    } | extra


def test_the_gateways_exchanges_fold_compiled_with_the_python_rows_and_the_rest_in_python() -> None:
    start = b"not events"  # poison, in Python
    messages = [(i + 1, "s", encode(exchange(meter_16(i))), 5) for i in range(20)]
    messages.append((21, "s", encode(exchange({"connectorId": 1}, action="StatusNotification")), 5))
    messages.append((22, "s", start, 5))
    messages.append((23, "s", encode(exchange(meter_16(1, value=" 1"))), 5))  # declined
    fast = assert_same(messages)
    assert {b.table: b.rows for b in fast.native} == {"events": 44, "transaction_facts": 21}
    assert len(fast.tables["poison_events"]) == 1
    assert fast.tables["events"] == []
    assert fast.tables["transaction_facts"] == []


ODD_JSON = [
    '"\\ud800"',  # msgspec refuses a lone surrogate; serde skips it unchecked
    '"\\udc00x"',
    '"a\x01b"',
    "1e999",  # msgspec refuses a number that overflows a float; serde skips it
    "-1E+400",
    "[1e400]",
    "1" * 400,
    "123456789012345678901234567890",
    "1.5e308",
    "0.1e-400",
    '"\\u0000"',
    '{"a":1,"a":2}',
    "[" * 200 + "]" * 200,
]


@pytest.mark.parametrize("odd", ODD_JSON)
@pytest.mark.parametrize("action", ["MeterValues", "Heartbeat"])
@pytest.mark.parametrize("where", ["payload", "answer"])
def test_json_the_two_parsers_may_read_differently_folds_the_same(
    odd: str, action: str, where: str
) -> None:
    frame = json.dumps([2, "m1", action, meter_16(1)])
    call = frame[:-2] + ', "x": ' + odd + "}]" if where == "payload" else frame
    x = exchange(call=call.encode(), action=action)
    if where == "answer":
        x["answer"] = msgspec.Raw(('[3,"m1",{"x":' + odd + "}]").encode())
    assert_same([(1, "s", encode(x), 0), (2, "s", encode(exchange(meter_16(2))), 0)])


def test_rows_that_do_not_encode_stay_rows() -> None:
    bad = exchange({"connectorId": 1, "transactionId": 1}, action="StartTransaction", seq=2**64 - 1)
    messages = [(1, "s", encode(exchange(meter_16(1))), 0), (2, "s", encode(bad), 0)]
    fast = assert_same(messages)
    # seq + 1 of the answer does not fit UInt64: the Python rows are inserted (and halved) apart
    assert len(fast.tables["events"]) == 2
    with pytest.raises(ValueError, match="does not fit"):
        _core.native_block("events", fast.tables["events"])
    with pytest.raises(TypeError):
        _core.native_block("events", [[object()] * len(COLUMNS["events"])])
    with pytest.raises(ValueError, match="no Native encoding"):
        _core.native_block("meter_values", [])


def test_a_failing_compiled_fold_leaves_the_batch_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_core, "fold_exchanges", broken)
    messages = [(1, "s", encode(exchange(meter_16(1))), 0)]
    fast = fold_batch_fast(messages)
    assert fast.native == []
    assert canonical(fast.tables) == canonical(fold_batch(messages).tables)


def test_block_columns_are_the_tables() -> None:
    assert COLUMNS["events"] == EVENT_COLUMNS
    assert COLUMNS["transaction_facts"] == FACT_COLUMNS


# -- the real engine ------------------------------------------------------------------------------
@pytest.fixture
async def two_stores() -> AsyncIterator[tuple[Store, Store]]:
    stores = []
    for name in ("py", "rs"):
        s = await Store.open(engine_url(), database=fresh_database(f"compiled_{name}"))
        await schema.apply(s)
        stores.append(s)
    yield stores[0], stores[1]
    for s in stores:
        await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
        await s.close()


TABLES = ("events", "transaction_facts", "meter_values", "station_seen", "poison_events")


async def test_the_engine_holds_the_same_tables(two_stores: tuple[Store, Store]) -> None:
    py, rs = two_stores
    messages = [(i + 1, "s", encode(exchange(meter_16(i))), 5) for i in range(30)]
    messages.append((31, "s", encode(exchange(meter_16(1, value="x1"))), 5))
    messages.append((32, "s", b"{", 5))
    await write_rows(py, fold_batch(messages))
    fast = fold_batch_fast(messages)
    for block in fast.native:  # as the projector inserts them
        await rs.insert_native(
            block.table, COLUMNS[block.table], block.data, settings=NATIVE_INSERT_SETTINGS
        )
    fast.native = []
    await write_rows(rs, fast)
    for table in TABLES:
        sql = f"SELECT * FROM {table} FINAL"
        a = sorted(map(repr, await py.query(sql)))
        b = sorted(map(repr, await rs.query(sql)))
        assert a, table
        assert a == b, table


class _RefusingStore:
    """A store whose Native inserts are refused: the projector inserts the rows instead."""

    accepts_native = True
    database = "db"

    def __init__(self) -> None:
        self.inserted: dict[str, list[Row]] = {}

    async def insert_native(self, *args: Any, **kwargs: Any) -> None:
        raise StatementError("Cannot parse input")

    async def insert(self, table: str, rows: list[Row], *args: Any, **kwargs: Any) -> None:
        self.inserted.setdefault(table, []).extend(rows)


async def test_a_refused_block_is_folded_again_in_python() -> None:
    store = _RefusingStore()
    projector = Projector(None, store)  # type: ignore[arg-type]
    messages = [(i + 1, "s", encode(exchange(meter_16(i))), 5) for i in range(3)]
    rows = fold_batch_fast(messages)
    assert rows.native
    assert all(isinstance(b, NativeBlock) for b in rows.native)
    await projector._insert(rows)
    expected = fold_batch(messages).tables
    assert sorted(map(repr, store.inserted["events"])) == sorted(map(repr, expected["events"]))
    assert sorted(map(repr, store.inserted["transaction_facts"])) == sorted(
        map(repr, expected["transaction_facts"])
    )
