"""The ``transactions`` view over folded facts, in the real engine (chDB): 1.6 and 2.0.1,
kWh and multipliers, late, out-of-order and duplicate events, Ended without Started, Stop for an
unknown id. Messages are folded and inserted directly (the projector's NATS side is covered by
tests/integration/test_projections.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.domain.events import FrameEvent
from streams import envelope, queries, schema
from streams.projections.projector import fold_batch, write_rows
from streams.store import Store
from tests.chdb_engine import engine_url, fresh_database
from tests.projection_events import ScriptedStation, meter_value, sampled_16


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("tx"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


class Stream:
    """Messages with stream sequences, projected in order (or in any order given)."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, list[FrameEvent]]] = []

    def add(self, *events: FrameEvent) -> int:
        seq = len(self.messages) + 1
        self.messages.append((seq, list(events)))
        return seq

    async def project(self, store: Store, order: list[int] | None = None) -> None:
        chosen = self.messages if order is None else [self.messages[i - 1] for i in order]
        batch = [(seq, "s", envelope.encode_many(evs), 0) for seq, evs in chosen]
        await write_rows(store, fold_batch(batch))


async def one(store: Store, station_id: str, transaction_id: str) -> dict[str, Any]:
    found = await queries.get_transaction(store, transaction_id, station_id)
    assert found is not None
    return found


def start_16(meter: int, ts: str = "2026-01-01T10:00:00Z") -> dict[str, Any]:
    return {"connectorId": 1, "idTag": "TAG1", "meterStart": meter, "timestamp": ts}


def accepted(transaction_id: int) -> dict[str, Any]:
    return {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}


async def test_16_completed_transaction(store: Store) -> None:
    st, stream = ScriptedStation("CP1"), Stream()
    stream.add(*st.answered("StartTransaction", start_16(1000), accepted(42)))
    mv = {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [meter_value("2026-01-01T10:30:00Z", sampled_16("2.5", unit="kWh"))],
    }
    stream.add(*st.answered("MeterValues", mv, {}))
    stop = {
        "transactionId": 42,
        "meterStop": 4000,
        "timestamp": "2026-01-01T11:00:00Z",
        "reason": "EVDisconnected",
    }
    stream.add(*st.answered("StopTransaction", stop, {"idTagInfo": {"status": "Accepted"}}))
    await stream.project(store)
    tx = await one(store, "CP1", "42")
    assert tx["status"] == "completed"
    assert (tx["meter_start_wh"], tx["meter_stop_wh"], tx["energy_wh"]) == (1000.0, 4000.0, 3000.0)
    assert tx["started_at"] == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert tx["stopped_at"] == dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)
    assert (tx["connector_id"], tx["id_token"], tx["stop_reason"]) == (1, "TAG1", "EVDisconnected")
    assert tx["ocpp_version"] == "1.6"
    assert [m["value_base"] for m in tx["meter_values"]] == [2500.0]


async def test_16_active_transaction_energy_so_far_in_kwh(store: Store) -> None:
    st, stream = ScriptedStation("CP1"), Stream()
    stream.add(*st.answered("StartTransaction", start_16(500), accepted(7)))
    for minute, kwh in ((10, "0.9"), (20, "1.7")):
        mv = {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [meter_value(f"2026-01-01T10:{minute}:00Z", sampled_16(kwh, unit="kWh"))],
        }
        stream.add(*st.answered("MeterValues", mv, {}))
    await stream.project(store)
    tx = await one(store, "CP1", "7")
    assert tx["status"] == "active"
    assert tx["stopped_at"] is None
    assert (tx["meter_start_wh"], tx["meter_stop_wh"], tx["energy_wh"]) == (500.0, 1700.0, 1200.0)


async def test_16_start_answer_in_a_later_message_and_offline_start(store: Store) -> None:
    st, stream = ScriptedStation("CP1"), Stream()
    call = st.call(
        "StartTransaction", start_16(0, ts="2025-12-31T22:00:00Z")
    )  # started offline, hours ago
    stream.add(call)
    stream.add(st.result(call, accepted(99)))
    stream.add(
        *st.answered(
            "StopTransaction",
            {"transactionId": 99, "meterStop": 800, "timestamp": "2025-12-31T23:00:00Z"},
            {},
        )
    )
    await stream.project(store, order=[3, 2, 1])  # and out of order
    tx = await one(store, "CP1", "99")
    assert tx["status"] == "completed"
    assert tx["started_at"] == dt.datetime(2025, 12, 31, 22, tzinfo=dt.UTC)
    assert tx["energy_wh"] == 800.0


async def test_16_stop_for_an_unknown_id_is_incomplete(store: Store) -> None:
    st, stream = ScriptedStation("CP1"), Stream()
    stream.add(
        *st.answered(
            "StopTransaction",
            {"transactionId": -1, "meterStop": 10, "timestamp": "2026-01-01T12:00:00Z"},
            {},
        )
    )
    await stream.project(store)
    tx = await one(store, "CP1", "-1")
    assert tx["status"] == "incomplete"
    assert tx["started_at"] is None
    assert tx["meter_start_wh"] is None
    assert tx["energy_wh"] is None
    assert tx["meter_stop_wh"] == 10.0


def tx_event(kind: str, seq_no: int, ts: str, tx_id: str = "T-1", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": ts,
        "triggerReason": "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id, **extra.pop("info", {})},
    }
    payload.update(extra)
    return payload


def energy(
    ts: str, value: float, context: str, unit: str = "Wh", multiplier: int = 0
) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [
                {
                    "value": value,
                    "context": context,
                    "unitOfMeasure": {"unit": unit, "multiplier": multiplier},
                }
            ],
        }
    ]


async def test_201_transaction_with_kwh_multiplier_out_of_order_and_duplicates(
    store: Store,
) -> None:
    st, stream = ScriptedStation("CS1", version="2.0.1"), Stream()
    started = tx_event(
        "Started",
        0,
        "2026-01-01T08:00:00Z",
        evse={"id": 1, "connectorId": 1},
        idToken={"idToken": "RFID1", "type": "ISO14443"},
        meterValue=energy("2026-01-01T08:00:00Z", 10.0, "Transaction.Begin", unit="kWh"),
    )
    updated = tx_event(
        "Updated",
        1,
        "2026-01-01T08:30:00Z",
        meterValue=energy("2026-01-01T08:30:00Z", 1.5, "Sample.Periodic", unit="Wh", multiplier=4),
    )
    ended = tx_event(
        "Ended",
        2,
        "2026-01-01T09:00:00Z",
        info={"stoppedReason": "EVDisconnected"},
        meterValue=energy("2026-01-01T09:00:00Z", 22.0, "Transaction.End", unit="kWh"),
    )
    stream.add(*st.answered("TransactionEvent", started, {}))
    stream.add(*st.answered("TransactionEvent", updated, {}))
    stream.add(*st.answered("TransactionEvent", ended, {}))
    stream.add(*st.answered("TransactionEvent", updated, {}))  # a retry of Updated: duplicate
    await stream.project(store, order=[3, 4, 1, 2])
    await stream.project(store)  # and everything delivered again
    tx = await one(store, "CS1", "T-1")
    assert tx["status"] == "completed"
    assert (tx["evse_id"], tx["connector_id"], tx["id_token"]) == (1, 1, "RFID1")
    assert (tx["meter_start_wh"], tx["meter_stop_wh"], tx["energy_wh"]) == (
        10_000.0,
        22_000.0,
        12_000.0,
    )
    assert tx["stop_reason"] == "EVDisconnected"
    assert [m["value_base"] for m in tx["meter_values"]] == [10_000.0, 15_000.0, 22_000.0]
    page = await queries.list_transactions(store, station_id="CS1")
    assert len(page.items) == 1


async def test_201_ended_without_started_is_incomplete(store: Store) -> None:
    st, stream = ScriptedStation("CS1", version="2.0.1"), Stream()
    ended = tx_event(
        "Ended",
        5,
        "2026-01-01T09:00:00Z",
        meterValue=energy("2026-01-01T09:00:00Z", 3000.0, "Transaction.End"),
    )
    stream.add(*st.answered("TransactionEvent", ended, {}))
    await stream.project(store)
    tx = await one(store, "CS1", "T-1")
    assert tx["status"] == "incomplete"
    assert tx["started_at"] is None
    assert tx["stopped_at"] == dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)
    assert (tx["meter_start_wh"], tx["energy_wh"]) == (None, None)


async def test_201_started_late_after_updates_without_begin_context(store: Store) -> None:
    st, stream = ScriptedStation("CS1", version="2.0.1"), Stream()
    upd1 = tx_event(
        "Updated",
        1,
        "2026-01-01T08:10:00Z",
        meterValue=energy("2026-01-01T08:10:00Z", 100.0, "Sample.Periodic"),
    )
    upd2 = tx_event(
        "Updated",
        2,
        "2026-01-01T08:20:00Z",
        meterValue=energy("2026-01-01T08:20:00Z", 250.0, "Sample.Periodic"),
    )
    started = tx_event("Started", 0, "2026-01-01T08:00:00Z", offline=True)
    for payload in (upd2, upd1, started):
        stream.add(*st.answered("TransactionEvent", payload, {}))
    await stream.project(store)
    tx = await one(store, "CS1", "T-1")
    assert tx["status"] == "active"
    assert tx["offline"] is True
    assert tx["started_at"] == dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
    assert (tx["meter_start_wh"], tx["meter_stop_wh"], tx["energy_wh"]) == (100.0, 250.0, 150.0)


async def test_list_filters_and_cursor_pages_newest_first(store: Store) -> None:
    st, stream = ScriptedStation("CP1"), Stream()
    for i in range(5):
        stream.add(
            *st.answered(
                "StartTransaction", start_16(0, ts=f"2026-01-0{i + 1}T10:00:00Z"), accepted(100 + i)
            )
        )
    stream.add(
        *st.answered(
            "StopTransaction",
            {"transactionId": 100, "meterStop": 5, "timestamp": "2026-01-01T11:00:00Z"},
            {},
        )
    )
    await stream.project(store)
    first = await queries.list_transactions(store, limit=2)
    assert [t["transaction_id"] for t in first.items] == ["104", "103"]
    assert first.next_cursor is not None
    second = await queries.list_transactions(store, limit=2, cursor=first.next_cursor)
    assert [t["transaction_id"] for t in second.items] == ["102", "101"]
    third = await queries.list_transactions(store, limit=2, cursor=second.next_cursor)
    assert [t["transaction_id"] for t in third.items] == ["100"]
    assert third.next_cursor is None
    completed = await queries.list_transactions(store, status="completed")
    assert [t["transaction_id"] for t in completed.items] == ["100"]
    window = await queries.list_transactions(
        store,
        since=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        until=dt.datetime(2026, 1, 4, tzinfo=dt.UTC),
    )
    assert [t["transaction_id"] for t in window.items] == ["102", "101"]
    assert (await queries.list_transactions(store, station_id="nobody")).items == []


async def test_a_row_the_client_cannot_encode_is_poison_not_a_blocked_projector(
    store: Store,
) -> None:
    from streams.projections.projector import Projector
    from streams.projections.rows import COLUMNS

    st, stream = ScriptedStation("CP1"), Stream()
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    for _ in range(3):
        stream.add(*st.answered("StatusNotification", status, {}))
    batch = [(seq, "s", envelope.encode_many(evs), 0) for seq, evs in stream.messages]
    rows = fold_batch(batch).tables["status_notifications"]
    connector = COLUMNS["status_notifications"].index("connector_id")
    rows[1][connector] = 2**40  # past Int32: only the client notices
    projector = Projector(None, store)  # type: ignore[arg-type]  # no NATS needed here
    await projector._insert_table("status_notifications", rows)
    kept = await store.query("SELECT stream_seq FROM status_notifications ORDER BY stream_seq")
    assert [r["stream_seq"] for r in kept] == [1, 3]
    (poison,) = await store.query("SELECT stream_seq, error FROM poison_events")
    assert poison["stream_seq"] == 2
    assert "status_notifications" in poison["error"]


async def test_201_events_with_the_same_timestamp_are_ordered_by_seq_no(store: Store) -> None:
    st, stream = ScriptedStation("CS1", version="2.0.1"), Stream()
    ts = "2026-01-01T08:00:00Z"
    started = tx_event("Started", 0, ts, meterValue=energy(ts, 100.0, "Sample.Periodic"))
    later = tx_event("Updated", 2, ts, meterValue=energy(ts, 300.0, "Sample.Periodic"))
    earlier = tx_event("Updated", 1, ts, meterValue=energy(ts, 200.0, "Sample.Periodic"))
    for payload in (started, later, earlier):  # seqNo 2 stored before seqNo 1
        stream.add(*st.answered("TransactionEvent", payload, {}))
    await stream.project(store)
    tx = await one(store, "CS1", "T-1")
    assert (tx["meter_start_wh"], tx["meter_stop_wh"]) == (100.0, 300.0)
