"""``meter_values`` rows, exploded inside the engine (chDB) from the raw CALLs the projector
inserts into ``events`` (schema 007): units and multipliers, defaults, the transaction and
connector of each source, and the exactly-once effect under replay."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from streams import envelope, schema
from streams.projections import units
from streams.projections.projector import fold_batch, write_rows
from streams.store import Store
from tests.chdb_engine import engine_url, fresh_database
from tests.projection_events import ScriptedStation, meter_value, sampled_16


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("mv"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


async def project(store: Store, *messages: list[Any], first_seq: int = 1) -> None:
    batch = [
        (first_seq + i, "s", envelope.encode_many(events), 0) for i, events in enumerate(messages)
    ]
    await write_rows(store, fold_batch(batch))


async def meters(store: Store) -> list[dict[str, Any]]:
    return await store.query(
        "SELECT * FROM meter_values FINAL ORDER BY stream_seq, sampled_at, measurand, phase"
    )


async def test_16_meter_values_defaults_units_and_transaction(store: Store) -> None:
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
                sampled_16("abc", format="SignedData", measurand="Energy.Active.Export.Register"),
            )
        ],
    }
    await project(store, st.answered("MeterValues", payload, {}))
    rows = {(m["measurand"], m["raw_value"]): m for m in await meters(store)}
    assert {k: (m["base_unit"], m["value_base"]) for k, m in rows.items()} == {
        ("Energy.Active.Import.Register", "3000"): ("Wh", 3000.0),
        ("Power.Active.Import", "7.4"): ("W", 7400.0),
        ("Current.Import", "16"): ("A", 16.0),
        ("SoC", "55"): ("Percent", 55.0),
        ("Temperature", "21"): ("Celsius", 21.0),
        ("Energy.Active.Export.Register", "abc"): ("Wh", None),
    }
    energy = rows[("Energy.Active.Import.Register", "3000")]
    assert (energy["location"], energy["context"], energy["unit"]) == (
        "Outlet",
        "Sample.Periodic",
        "Wh",
    )
    assert (energy["connector_id"], energy["evse_id"], energy["transaction_id"]) == (2, None, "5")
    assert rows[("Current.Import", "16")]["phase"] == "L1"
    assert rows[("SoC", "55")]["location"] == "EV"
    assert energy["sampled_at"].isoformat() == "2026-01-01T10:30:00+00:00"


async def test_16_stop_transaction_data_in_kwh(store: Store) -> None:
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
    await project(store, st.answered("StopTransaction", stop, {}))
    got = [
        (m["raw_value"], m["unit"], m["value_base"], m["base_unit"]) for m in await meters(store)
    ]
    assert got == [("1.2", "kWh", 1200.0, "Wh"), ("5.2", "kWh", 5200.0, "Wh")]
    assert {m["transaction_id"] for m in await meters(store)} == {"42"}


async def test_2x_transaction_event_multiplier_evse_and_connector(store: Store) -> None:
    st = ScriptedStation("CS2", version="2.0.1")
    event = {
        "eventType": "Started",
        "timestamp": "2026-01-01T10:00:00+01:00",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-1"},
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
    values = {
        "evseId": 3,
        "meterValue": [
            {
                "timestamp": "2026-01-01T09:05:00Z",
                "sampledValue": [
                    {"value": 230, "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}}
                ],
            }
        ],
    }
    await project(
        store, st.answered("TransactionEvent", event, {}), st.answered("MeterValues", values, {})
    )
    first, second = await meters(store)
    assert (first["multiplier"], first["raw_value"], first["value_base"]) == (1, "12.5", 125_000.0)
    assert (first["evse_id"], first["connector_id"], first["transaction_id"]) == (1, 2, "tx-1")
    assert first["context"] == "Transaction.Begin"
    assert (second["evse_id"], second["connector_id"], second["transaction_id"]) == (3, None, "")
    assert (second["raw_value"], second["value_base"], second["base_unit"]) == ("230", 230.0, "V")


async def test_answers_and_refused_frames_give_no_rows(store: Store) -> None:
    st = ScriptedStation("CP1")
    payload = {
        "connectorId": 1,
        "meterValue": [meter_value("2026-01-01T10:00:00Z", sampled_16("1"))],
    }
    call, answer = st.answered("MeterValues", payload, {})
    refused = st.call("MeterValues", payload)
    refused = msgspec.structs.replace(refused, reason="schema: invalid")
    await project(store, [call, answer], [refused])
    assert [(m["stream_seq"], m["transaction_id"]) for m in await meters(store)] == [(1, "")]


async def test_replay_and_redelivery_give_the_same_rows_once(store: Store) -> None:
    st = ScriptedStation("CP1")
    payload = {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            meter_value(
                "2026-01-01T10:00:00Z",
                sampled_16("1"),
                sampled_16("2", measurand="SoC", unit="Percent"),
            )
        ],
    }
    message = st.answered("MeterValues", payload, {})
    await project(store, message)
    once = await meters(store)
    await project(store, message)  # a redelivery: the same stream sequence again
    await project(store, message)  # a replay
    assert await meters(store) == once
    await project(store, message, first_seq=9)  # the station sends it again (a retry)
    again = await meters(store)
    assert [m["stream_seq"] for m in again] == [9, 9]  # one row per reading, the later wins


@pytest.mark.parametrize("name", ["007_meter_values_from_events", "009_meter_values_typed"])
def test_the_sql_unit_table_is_the_python_one(name: str) -> None:
    """The views' transform() arrays spell streams/projections/units.py's table."""
    sql = (schema.SCHEMA_DIR / f"{name}.sql").read_text()
    table = re.search(r"transform\(unit_or_wh,\s*\[([^\]]*)\],\s*\[([^\]]*)\],\s*unit_or_wh\)", sql)
    assert table is not None
    arrays = [re.findall(r"'([^']*)'", table[1]), re.findall(r"'([^']*)'", table[2])]
    names, bases = arrays
    assert dict(zip(names, bases, strict=True)) == {u: units.base_unit(u)[0] for u in names}
    assert set(names) == set(units._UNITS)
    kilo = re.search(r"transform\(unit_or_wh, \[([^\]]*)\], \[([^\]]*)\]", sql)
    assert kilo is not None
    kilo_units = re.findall(r"'([^']*)'", kilo[1])
    assert {u for u in units._UNITS if units.base_unit(u)[1] != 1.0} == set(kilo_units)
    assert all(units.base_unit(u)[1] == 1000.0 for u in kilo_units)


async def test_one_view_makes_the_meter_rows(store: Store) -> None:
    """009 replaced 007's view: exactly one materialized view writes meter_values."""
    views = await store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine = 'MaterializedView' AND create_table_query LIKE '% TO %meter_values%'",
        {"db": store.database},
    )
    assert [v["name"] for v in views] == ["meter_values_from_events_typed"]
