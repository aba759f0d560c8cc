"""The pure folds: stream message → rows (no engine, no NATS)."""

from __future__ import annotations

from typing import Any

import pytest

from streams import envelope
from streams.projections.fold import fold_message
from streams.projections.projector import fold_batch
from streams.projections.rows import COLUMNS, WHOLE_MESSAGE, Rows
from streams.projections.units import normalise
from tests.projection_events import ScriptedStation, meter_value, sampled_16


def fold(seq: int, events: list[Any]) -> Rows:
    return fold_message(seq, "csms.evt.v1.x", envelope.encode_many(events), 1_000)


def named(rows: Rows, table: str) -> list[dict[str, Any]]:
    return [dict(zip(COLUMNS[table], row, strict=True)) for row in rows.tables[table]]


def test_every_row_matches_its_table_columns() -> None:
    st = ScriptedStation("CP1")
    rows = fold(
        1,
        [
            st.connected(),
            *st.answered(
                "BootNotification",
                {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.2"},
                {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300},
            ),
        ],
    )
    for table, table_rows in rows.tables.items():
        for row in table_rows:
            assert len(row) == len(COLUMNS[table]), table
    assert named(rows, "station_boots")[0]["model"] == "M"
    assert named(rows, "station_sessions")[0]["event"] == "connected"
    assert len(named(rows, "events")) == 3
    assert [r["station_id"] for r in named(rows, "station_seen")] == ["CP1"]


def test_16_start_with_its_answer_in_the_message_carries_the_transaction_id() -> None:
    st = ScriptedStation("CP1")
    start = {
        "connectorId": 1,
        "idTag": "TAG",
        "meterStart": 1200,
        "timestamp": "2026-01-01T10:00:00Z",
    }
    rows = fold(
        7,
        st.answered(
            "StartTransaction", start, {"transactionId": 42, "idTagInfo": {"status": "Accepted"}}
        ),
    )
    (fact,) = named(rows, "transaction_facts")
    assert fact["transaction_id"] == "42"
    assert fact["fact"] == "start"
    assert fact["meter_wh"] == 1200.0
    assert fact["role"] == "begin"
    assert fact["connector_id"] == 1
    assert fact["id_token"] == "TAG"
    assert fact["corr"] == ""
    assert fact["at"] == 1_767_261_600_000


def test_16_start_and_answer_in_separate_messages_correlate() -> None:
    st = ScriptedStation("CP1")
    call = st.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"},
    )
    answer = st.result(call, {"transactionId": 9, "idTagInfo": {"status": "Accepted"}})
    (start,) = named(fold(1, [call]), "transaction_facts")
    (start_id,) = named(fold(2, [answer]), "transaction_facts")
    assert start["transaction_id"] == ""
    assert start["corr"] == start_id["corr"] == f"s1/{call.unique_id}"
    assert start_id["fact"] == "start_id"
    assert start_id["transaction_id"] == "9"


def test_16_stop_with_kwh_transaction_data() -> None:
    st = ScriptedStation("CP1")
    stop = {
        "transactionId": 42,
        "meterStop": 5200,
        "timestamp": "2026-01-01T11:00:00Z",
        "transactionData": [
            meter_value(
                "2026-01-01T10:00:00Z", sampled_16("1.2", unit="kWh", context="Transaction.Begin")
            ),
            meter_value(
                "2026-01-01T11:00:00Z", sampled_16("5.2", unit="kWh", context="Transaction.End")
            ),
        ],
    }
    rows = fold(3, st.answered("StopTransaction", stop, {}))
    facts = named(rows, "transaction_facts")
    assert [(f["fact"], f["role"], f["meter_wh"]) for f in facts] == [
        ("stop", "end", 5200.0),
        ("reading", "begin", 1200.0),
        ("reading", "end", 5200.0),
    ]
    assert facts[0]["stop_reason"] == "Local"
    # meter_values rows come from the engine (test_projections_meter_sql.py)
    assert named(rows, "meter_values") == []


def test_16_meter_values_defaults_and_units() -> None:
    st = ScriptedStation("CP1")
    payload = {
        "connectorId": 2,
        "transactionId": 5,
        "meterValue": [
            meter_value(
                "2026-01-01T10:30:00Z",
                sampled_16("3000"),
                sampled_16("7.4", measurand="Power.Active.Import", unit="kW"),
                sampled_16("16", measurand="Current.Import", unit="A", phase="L1"),
                sampled_16("55", measurand="SoC", unit="Percent", location="EV"),
                sampled_16("21", measurand="Temperature", unit="Celcius"),
                sampled_16("abc", format="SignedData"),
            )
        ],
    }
    rows = fold(4, st.answered("MeterValues", payload, {}))
    # only the readable, unphased energy register becomes a transaction reading
    facts = named(rows, "transaction_facts")
    assert [(f["fact"], f["meter_wh"], f["transaction_id"]) for f in facts] == [
        ("reading", 3000.0, "5")
    ]


def test_2x_transaction_event_with_multiplier_and_seq_no() -> None:
    st = ScriptedStation("CS2", version="2.0.1")
    event = {
        "eventType": "Started",
        "timestamp": "2026-01-01T10:00:00+01:00",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "offline": True,
        "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
        "idToken": {"idToken": "ABC", "type": "ISO14443"},
        "evse": {"id": 1, "connectorId": 2},
        "meterValue": [
            {
                "timestamp": "2026-01-01T09:00:00Z",
                "sampledValue": [
                    {
                        "value": 12.5,
                        "context": "Transaction.Begin",
                        "unitOfMeasure": {"unit": "kWh", "multiplier": 1},
                    }
                ],
            }
        ],
    }
    rows = fold(1, st.answered("TransactionEvent", event, {}))
    facts = named(rows, "transaction_facts")
    assert facts[0]["fact"] == "started"
    assert facts[0]["seq_no"] == 0
    assert facts[0]["offline"] == 1
    assert facts[0]["at"] == 1_767_258_000_000  # 09:00Z
    assert (facts[0]["evse_id"], facts[0]["connector_id"], facts[0]["id_token"]) == (1, 2, "ABC")
    assert (facts[1]["fact"], facts[1]["role"], facts[1]["meter_wh"]) == (
        "reading",
        "begin",
        125_000.0,
    )


def test_2x_ended_without_reason_is_local() -> None:
    st = ScriptedStation("CS2", version="2.0.1")
    event = {
        "eventType": "Ended",
        "timestamp": "2026-01-01T10:00:00Z",
        "triggerReason": "EVDeparted",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "tx-1"},
    }
    (fact,) = named(fold(1, st.answered("TransactionEvent", event, {})), "transaction_facts")
    assert (fact["fact"], fact["stop_reason"]) == ("ended", "Local")


def test_status_notifications_both_versions() -> None:
    v16 = ScriptedStation("CP1")
    v2 = ScriptedStation("CS2", version="2.0.1")
    rows = fold(
        1,
        v16.answered(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"},
            {},
        ),
    )
    rows.extend(
        fold(
            2,
            v2.answered(
                "StatusNotification",
                {
                    "timestamp": "2026-01-01T00:00:00Z",
                    "connectorStatus": "Occupied",
                    "evseId": 1,
                    "connectorId": 1,
                },
                {},
            ),
        )
    )
    statuses = named(rows, "status_notifications")
    assert [
        (s["station_id"], s["evse_id"], s["connector_id"], s["status"], s["error_code"])
        for s in statuses
    ] == [
        ("CP1", None, 1, "Faulted", "GroundFailure"),
        ("CS2", 1, 1, "Occupied", ""),
    ]


def test_poison_event_is_recorded_and_the_rest_of_the_message_still_folds() -> None:
    st = ScriptedStation("CP1")
    bad = st.call("StopTransaction", {"meterStop": 1})  # no transactionId: cannot be folded
    good = st.answered(
        "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}, {}
    )
    rows = fold(11, [bad, *good])
    (poison,) = named(rows, "poison_events")
    assert (poison["stream_seq"], poison["idx"]) == (11, 0)
    assert "KeyError" in poison["error"]
    assert len(named(rows, "events")) == 3
    assert len(named(rows, "status_notifications")) == 1


def test_a_message_that_is_not_events_is_one_poison_row() -> None:
    rows = fold_message(5, "csms.evt.v1.x", b"{not json", 1_000)
    (poison,) = named(rows, "poison_events")
    assert poison["idx"] == WHOLE_MESSAGE
    assert rows.count() == 1


def test_refused_frames_stay_in_events_only() -> None:
    st = ScriptedStation("CP1")
    refused = st._event(action=None, raw='[2,"x","MeterValues",{}]', reason="missing connectorId")
    rows = fold(1, [refused])
    assert rows.count() == 2  # the event and station_seen
    assert named(rows, "events")[0]["reason"] == "missing connectorId"


def test_same_message_folds_to_the_same_rows() -> None:
    st = ScriptedStation("CP1")
    data = st.answered(
        "MeterValues",
        {"connectorId": 1, "meterValue": [meter_value("2026-01-01T00:00:00Z", sampled_16("1"))]},
        {},
    )
    assert fold(3, data).tables == fold(3, data).tables


def test_normalise() -> None:
    assert normalise(2.0, "kWh", 0) == ("Wh", 2000.0)
    assert normalise(2.0, "Wh", 3) == ("Wh", 2000.0)
    assert normalise(5.0, "kW", -1) == ("W", 500.0)
    assert normalise(1.0, "kvarh", 0) == ("varh", 1000.0)
    assert normalise(1.0, "Hz", 0) == ("Hz", 1.0)
    assert normalise(None, "kWh", 0) == ("Wh", None)


def test_values_that_do_not_fit_their_column_make_the_event_poison() -> None:
    st = ScriptedStation("CS2", version="2.0.1")
    status = {
        "timestamp": "2026-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": 2**40,
        "connectorId": 1,
    }
    rows = fold(1, st.answered("StatusNotification", status, {}))
    assert named(rows, "status_notifications") == []
    (poison,) = named(rows, "poison_events")
    assert "32-bit" in poison["error"]


def test_an_unreadable_answer_is_not_a_crash() -> None:
    st = ScriptedStation("CP1")
    call = st.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0})
    answer = st._event(
        direction="out",
        message_type=3,
        unique_id=call.unique_id,
        action="StartTransaction",
        raw="[3, not json",
    )
    rows = fold(1, [call, answer])
    (start,) = named(rows, "transaction_facts")  # left uncorrelated, not a crash
    assert (start["fact"], start["transaction_id"], start["corr"]) == (
        "start",
        "",
        "s1/" + str(call.unique_id),
    )
    assert len(named(rows, "events")) == 2


def test_a_fold_bug_costs_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.projections import projector

    def broken(seq: int, subject: str, data: bytes, now_ms: int, into: Rows | None = None) -> Rows:
        rows = fold_message(seq, subject, data, now_ms, into)
        if seq == 2:  # after its rows went into the batch: they must not stay
            raise RuntimeError("bug")
        return rows

    monkeypatch.setattr(projector, "fold_message", broken)
    st = ScriptedStation("CP1")
    data = envelope.encode_many([st.connected()])
    rows = projector.fold_batch([(1, "s", data, 0), (2, "s", data, 0), (3, "s", data, 0)])
    assert [r[2] for r in rows.tables["events"]] == [1, 3]
    assert len(rows.tables["station_sessions"]) == 2
    assert [(r[0], r[1]) for r in rows.tables["poison_events"]] == [(2, WHOLE_MESSAGE)]


def test_a_batch_keeps_one_station_seen_row_per_station_its_latest() -> None:
    """station_seen keeps the latest time per station (ReplacingMergeTree(last_seen_at)): a
    batch writes one row per station, not one per message, whatever the message order."""
    a, b = ScriptedStation("A"), ScriptedStation("B")
    first_a, first_b, second_a = a.connected(), b.connected(), a.disconnected()
    messages = [first_a, first_b, second_a]
    batch = [
        (i + 1, "s", envelope.encode_many([event]), 0)
        for i, event in enumerate([second_a, first_b, first_a])  # latest of A comes first
    ]
    rows = fold_batch(batch)
    assert sorted(rows.tables["station_seen"]) == [
        ["A", second_a.received_at_ns],
        ["B", first_b.received_at_ns],
    ]
    assert len(rows.tables["events"]) == len(messages)


def test_only_the_16_energy_register_becomes_a_reading_and_a_2x_bad_multiplier_is_poison() -> None:
    """1.6: the other measurands and phased values give no reading (they are skipped before
    their unit is looked at); 2.x: a multiplier that does not fit Int8 makes the event poison
    whatever its measurand, as before."""
    st = ScriptedStation("CP1")
    payload = {
        "connectorId": 1,
        "transactionId": 9,
        "meterValue": [
            meter_value(
                "2026-01-01T10:00:00Z",
                sampled_16("7.4", measurand="Power.Active.Import", unit="kW"),
                sampled_16("1.0", phase="L1", unit="kWh"),
                sampled_16("2.5", unit="kWh"),
            )
        ],
    }
    rows = fold(1, st.answered("MeterValues", payload, {}))
    assert [(f["fact"], f["meter_wh"]) for f in named(rows, "transaction_facts")] == [
        ("reading", 2500.0)
    ]
    st2 = ScriptedStation("CS2", version="2.0.1")
    voltage = {
        "value": 230,
        "measurand": "Voltage",
        "unitOfMeasure": {"unit": "V", "multiplier": 999},
    }
    event = {
        "eventType": "Updated",
        "timestamp": "2026-01-01T10:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "tx-1"},
        "meterValue": [{"timestamp": "2026-01-01T10:00:00Z", "sampledValue": [voltage]}],
    }
    rows = fold(2, st2.answered("TransactionEvent", event, {}))
    assert [r[1] for r in rows.tables["poison_events"]] == [0]
    assert rows.tables["transaction_facts"] == []


def test_reading_rows_are_the_rows_fact_row_makes() -> None:
    from streams.projections.meter import Reading, Where
    from streams.projections.transactions import fact_row, reading_rows

    where = Where("CP1", 7, 2, 1_000, "2.0.1")
    readings = [Reading(5_000, 1234.5, "begin"), Reading(6_000, 2000.0, "sample")]
    made = reading_rows(where, "tx", readings, 1, evse_id=3, connector_id=4, seq_no=9)
    assert made == [
        fact_row(
            where,
            "tx",
            1 + i,
            "reading",
            r.at_ms,
            seq_no=9,
            evse_id=3,
            connector_id=4,
            meter_wh=r.energy_wh,
            role=r.role,
        )
        for i, r in enumerate(readings)
    ]
    assert all(len(row) == len(COLUMNS["transaction_facts"]) for row in made)
