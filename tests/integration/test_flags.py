"""M30/M31 (reliability.md §5.3): suspicious CALLs get their normal answer, and their stored
event carries the flag in ``reason``; normal CALLs are not flagged."""

from __future__ import annotations

from typing import Any

import pytest

from csms import app
from csms.domain import flags
from tests.integration.conftest import read_events, ws_url
from tests.integration.station import Station

NOW = "2026-11-21T10:00:00Z"


def energy(value: Any, measurand: str | None = "Energy.Active.Import.Register") -> dict[str, Any]:
    sample: dict[str, Any] = {"value": value}
    if measurand is not None:
        sample["measurand"] = measurand
    return {"timestamp": NOW, "sampledValue": [sample]}


async def answered(station: Station, action: str, payload: dict[str, Any]) -> Any:
    frame = await station.call(action, payload)
    assert frame[0] == 3, frame
    return frame[2]


async def calls_and_reasons(csms: app.Running, station_id: str, count: int) -> list[Any]:
    events = await read_events(csms.nats_url, station_id, count)
    return [(e.action, e.reason) for e in events if e.kind == "frame" and e.direction == "in"]


async def test_m30_negative_energy_is_answered_and_flagged_on_16(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "M30-16"), "ocpp1.6")
    meter = {"connectorId": 1, "meterValue": [energy("-12.5")]}
    power = {"connectorId": 1, "meterValue": [energy("-3", "Power.Active.Import")]}
    default_measurand = {"connectorId": 1, "meterValue": [energy("-1", None)]}
    normal = {"connectorId": 1, "meterValue": [energy("12.5")]}
    for payload in (meter, power, default_measurand, normal):
        assert await answered(station, "MeterValues", payload) == {}
    await station.close()
    reasons = [r for _, r in await calls_and_reasons(csms, "M30-16", 1 + 8 + 1)]
    assert reasons[0] == f"{flags.NEGATIVE_ENERGY}: Energy.Active.Import.Register -12.5"
    assert reasons[1] is None  # a negative power reading is legitimate (export)
    assert reasons[2] == f"{flags.NEGATIVE_ENERGY}: Energy.Active.Import.Register -1"
    assert reasons[3] is None


@pytest.mark.parametrize(("version", "token"), [("2.0.1", "ocpp2.0.1"), ("2.1", "ocpp2.1")])
async def test_m30_negative_energy_in_a_transaction_event_is_flagged(
    csms: app.Running, version: str, token: str
) -> None:
    station_id = f"m30-{version}"  # 2.x identities are case-insensitive: stored lower-case
    station = await Station.connect(ws_url(csms, station_id), token)
    event = {
        "eventType": "Updated",
        "timestamp": NOW,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "T1"},
        "meterValue": [energy(-250.0)],
    }
    assert await answered(station, "TransactionEvent", event) == {}
    await station.close()
    [(action, reason)] = await calls_and_reasons(csms, station_id, 1 + 2 + 1)
    assert action == "TransactionEvent"
    assert reason == f"{flags.NEGATIVE_ENERGY}: Energy.Active.Import.Register -250.0"


async def test_m31_stop_for_an_unknown_id_is_answered_and_flagged(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "M31"), "ocpp1.6")
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 100, "timestamp": NOW}
    transaction_id = (await answered(station, "StartTransaction", start))["transactionId"]
    stops = [
        {"transactionId": -1, "meterStop": 200, "timestamp": NOW, "idTag": "TAG1"},
        {"transactionId": transaction_id + 1_000_000, "meterStop": 200, "timestamp": NOW},
        {"transactionId": transaction_id, "meterStop": 200, "timestamp": NOW},
    ]
    answers = [await answered(station, "StopTransaction", stop) for stop in stops]
    assert answers[0] == {"idTagInfo": {"status": "Accepted"}}  # idTagInfo as the idTag came
    assert answers[1] == answers[2] == {}
    await station.close()
    reasons = await calls_and_reasons(csms, "M31", 1 + 8 + 1)
    assert reasons == [
        ("StartTransaction", None),
        ("StopTransaction", f"{flags.UNKNOWN_TRANSACTION} -1"),
        ("StopTransaction", f"{flags.UNKNOWN_TRANSACTION} {transaction_id + 1_000_000}"),
        ("StopTransaction", None),
    ]


async def test_m31_a_stop_for_another_stations_transaction_is_flagged(csms: app.Running) -> None:
    owner = await Station.connect(ws_url(csms, "M31-owner"), "ocpp1.6")
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 100, "timestamp": NOW}
    transaction_id = (await answered(owner, "StartTransaction", start))["transactionId"]
    await owner.close()
    other = await Station.connect(ws_url(csms, "M31-other"), "ocpp1.6")
    stop = {"transactionId": transaction_id, "meterStop": 200, "timestamp": NOW}
    assert await answered(other, "StopTransaction", stop) == {}
    await other.close()
    [(_, reason)] = await calls_and_reasons(csms, "M31-other", 1 + 2 + 1)
    assert reason == f"{flags.UNKNOWN_TRANSACTION} {transaction_id} (started by M31-owner)"


async def test_m30_and_m31_on_one_stop_keep_both_flags(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "M30-M31"), "ocpp1.6")
    stop = {"transactionId": -1, "meterStop": -5, "timestamp": NOW}
    assert await answered(station, "StopTransaction", stop) == {}
    await station.close()
    reasons = await calls_and_reasons(csms, "M30-M31", 1 + 2 + 1)
    assert reasons == [
        (
            "StopTransaction",
            f"{flags.NEGATIVE_ENERGY}: meterStop -5; {flags.UNKNOWN_TRANSACTION} -1",
        )
    ]
