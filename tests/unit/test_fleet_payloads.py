"""The fleet simulator's frames are schema-valid for their version: its CALLs as the CSMS checks
them, its answers to CSMS commands as a station's outbound CALLRESULTs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bench.fleet import commands
from bench.fleet import scenario as scenarios
from bench.fleet.payloads import V2, V16, Transaction, dialect
from csms.protocol import Call, Codec, codec_for, schema_dir

VERSIONS = ["1.6", "2.0.1", "2.1"]


def _station_calls(version: str) -> list[tuple[str, Any]]:
    d = dialect(version)
    tx = Transaction("cp1-1", "TAG1", meter_start_wh=1234, transaction_id=42)
    calls: list[tuple[str, Any]] = [
        ("BootNotification", d.boot("cp1")),
        ("StatusNotification", d.status(1, "Available")),
        ("StatusNotification", d.status(1, "Occupied")),
        ("Authorize", d.authorize("TAG1")),
        ("Heartbeat", b"{}"),
    ]
    for context in ("Sample.Periodic", "Sample.Clock", "Trigger"):
        action, payload = d.meter_values(tx, context, offline=True)
        calls.append((action.decode(), payload))
    if isinstance(d, V16):
        calls.append(("StartTransaction", d.start_transaction(tx)))
        calls.append(("StopTransaction", {**d.stop_transaction(tx, "Local"), "transactionId": 42}))
    else:
        assert isinstance(d, V2)
        tx.remote_start_id = 3
        calls.append(
            (
                "TransactionEvent",
                d.transaction_event(tx, "Started", "RemoteStart", "Transaction.Begin"),
            )
        )
        calls.append(
            (
                "TransactionEvent",
                d.transaction_event(tx, "Ended", "StopAuthorized", None, True, "Local"),
            )
        )
    return calls


@pytest.mark.parametrize("version", VERSIONS)
def test_station_calls_are_valid(version: str) -> None:
    codec = codec_for(version)
    for action, payload in _station_calls(version):
        data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        frame = codec.decode(b'[2,"1","%s",%s]' % (action.encode(), data))  # raises if invalid
        assert isinstance(frame, Call)
        assert frame.action == action


def test_meter_values_carry_ten_sampled_values() -> None:
    tx = Transaction("cp1-1", "TAG1")
    _, payload = dialect("2.0.1").meter_values(tx, "Sample.Periodic")
    assert isinstance(payload, bytes)
    sampled = msgspec.json.decode(payload)["meterValue"][0]["sampledValue"]
    phases = {s.get("phase") for s in sampled}
    assert len(sampled) == 10
    assert {"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"} <= phases


COMMAND_CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "1.6": [
        ("Reset", {"type": "Hard"}),
        ("RemoteStartTransaction", {"idTag": "T"}),
        ("RemoteStopTransaction", {"transactionId": 1}),
        ("TriggerMessage", {"requestedMessage": "BootNotification"}),
        ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
        ("ClearCache", {}),
        ("UnlockConnector", {"connectorId": 1}),
        ("DataTransfer", {"vendorId": "x"}),
        ("GetConfiguration", {}),
        ("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"}),
        ("ChangeConfiguration", {"key": "Unknown", "value": "2"}),
    ],
    "2.x": [
        ("Reset", {"type": "OnIdle"}),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "T", "type": "ISO14443"}, "remoteStartId": 1},
        ),
        ("RequestStopTransaction", {"transactionId": "t"}),
        ("TriggerMessage", {"requestedMessage": "MeterValues"}),
        ("ChangeAvailability", {"operationalStatus": "Inoperative"}),
        ("ClearCache", {}),
        ("GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}),
        ("UnlockConnector", {"evseId": 1, "connectorId": 1}),
        ("DataTransfer", {"vendorId": "x"}),
        (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "X"},
                        "variable": {"name": "Y"},
                        "attributeType": "Actual",
                    }
                ]
            },
        ),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {"component": {"name": "X"}, "variable": {"name": "Y"}, "attributeValue": "1"}
                ]
            },
        ),
    ],
}


@pytest.mark.parametrize("version", VERSIONS)
def test_command_answers_are_valid(version: str) -> None:
    station = Codec(version, schema_dir(version), role="station")
    csms = codec_for(version)
    for action, payload in COMMAND_CALLS["1.6" if version == "1.6" else "2.x"]:
        csms.encode_call("c1", action, payload)  # the command itself is valid
        answer = commands.answer(version, action, payload)
        assert answer is not None, action
        station.encode_call_result(action, "c1", answer)
    assert commands.answer(version, "NoSuchAction", {}) is None


def test_every_scenario_file_loads() -> None:
    found = {name: scenarios.load(name) for name in scenarios.names()}
    assert {"throughput", "steady", "clock-aligned-burst", "boot-storm", "end-to-end-lag"} <= set(
        found
    )
    for name, scenario in found.items():
        assert scenario.name == name
        assert scenario.status in ("ready", "stub")
        assert scenario.status == "ready" or scenario.needs, f"{name}: a stub says what it needs"
    assert found["end-to-end-lag"].status == "ready"  # bench/load/lag.py runs it


def test_scenario_overrides_and_unknown_keys() -> None:
    changed = scenarios.load("steady", ["authorize=false", "idle_s=[1, 2]", "name=other"])
    assert (changed.authorize, changed.idle_s, changed.name) == (False, (1.0, 2.0), "other")
    with pytest.raises(msgspec.ValidationError):
        scenarios.load("steady", ["no_such_key=1"])
    with pytest.raises(ValueError, match="no scenario"):
        scenarios.load("nope")
