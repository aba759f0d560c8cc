"""The fleet simulator (bench/fleet) against the real CSMS: every CALL answered with a CALLRESULT
(the CSMS validates each frame, so no CALLERROR means schema-valid frames), transactions complete,
CSMS commands get validated answers, and stations come back with back-off after a server close."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.fleet.fleet import Fleet
from bench.fleet.scenario import load
from csms import app
from streams.embedded import EmbeddedNats
from streams.registry import StationRecord, hash_password
from tests.integration.conftest import ws_url
from tests.integration.secure_client import client_tls
from tests.integration.test_security import make_pki, start_secure

FAST = msgspec.structs.replace(
    load("steady"),
    name="test-fast",
    heartbeat_interval_s=0.5,
    start_at_once=True,
    idle_s=(0.1, 0.3),
    session_s=(0.8, 1.2),
    meter_interval_s=(0.1, 0.2),
    call_timeout_s=5.0,
    backoff_s=(0.4, 2.0),
    connect_concurrency=0,
)
"""Sessions of about a second with meter values every 0.1-0.2 s and heartbeats every 0.5 s."""

COMMANDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "1.6": [
        ("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]}),
        ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
        ("RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1}),
        ("Reset", {"type": "Soft"}),
    ],
    "2.x": [
        (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {"component": {"name": "Nope"}, "variable": {"name": "Nothing"}},
                ]
            },
        ),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "attributeValue": "60",
                    }
                ]
            },
        ),
        ("TriggerMessage", {"requestedMessage": "StatusNotification"}),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "REMOTE1", "type": "ISO14443"}, "remoteStartId": 7},
        ),
        ("Reset", {"type": "Immediate"}),
    ],
}


def _base_url(running: app.Running) -> str:
    return ws_url(running, "x").rsplit("/", 1)[0]


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_fleet_transactions_and_commands(csms: app.Running, version: str) -> None:
    prefix = f"sim{version.replace('.', '')}-"
    async with Fleet(_base_url(csms), FAST, version, 4, prefix) as fleet:
        await fleet.until(lambda f: f.shared.transactions_completed >= 8, timeout_s=20)
        target = fleet.station_ids()[0]
        session = csms.gateway.sessions[target]
        answers = {}
        for action, payload in COMMANDS["1.6" if version == "1.6" else "2.x"]:
            answers[action] = await session.call(action, payload, timeout_s=5)
        station = fleet.stations[0]
        # the Reset closes the socket and reboots at once: the station is back and Accepted
        await fleet.until(lambda _: station.connection >= 2 and station.accepted, timeout_s=10)
    result = fleet.result()
    assert result.callerrors == {}, result.callerrors
    assert result.timeouts == {}, result.timeouts
    assert dict(result.errors) == {}, result.errors
    in_flight_at_stop = sum(result.sent.values()) - sum(result.answered.values())
    assert 0 <= in_flight_at_stop <= 4
    assert result.boot.accepted == 4
    assert result.transactions_completed >= 8
    assert result.transactions_started >= result.transactions_completed
    assert set(result.commands) == {a for a, _ in COMMANDS["1.6" if version == "1.6" else "2.x"]}
    assert answers["Reset"] == {"status": "Accepted"}
    if version == "1.6":
        assert answers["GetConfiguration"]["unknownKey"] == ["NoSuchKey"]
        assert result.sent["MeterValues"] > 0
        assert result.sent["StopTransaction"] >= 8
    else:
        statuses = [r["attributeStatus"] for r in answers["GetVariables"]["getVariableResult"]]
        assert statuses == ["Accepted", "UnknownComponent"]
        assert result.sent["TransactionEvent"] > 3 * 8


async def test_reconnect_with_backoff_replays_offline_queue(csms: app.Running) -> None:
    scenario = msgspec.structs.replace(FAST, session_s=(0.0, 0.0), backoff_s=(1.0, 4.0))
    async with Fleet(_base_url(csms), scenario, "2.0.1", 2, "simrc-") as fleet:
        await fleet.until(lambda f: f.shared.transactions_started >= 2, timeout_s=10)
        station = fleet.stations[0]
        closed_at = time.monotonic()
        csms.gateway.sessions[station.station_id].close()
        await fleet.until(lambda _: station.connection == 2 and station.accepted, timeout_s=10)
        back_after_s = time.monotonic() - closed_at
        # meter values taken while offline are sent after the boot, then new ones
        await fleet.until(lambda f: f.shared.replayed >= 2, timeout_s=10)
        answered_before = fleet.shared.answered[b"TransactionEvent"]
        await fleet.until(
            lambda f: f.shared.answered[b"TransactionEvent"] > answered_before + 4, timeout_s=10
        )
    result = fleet.result()
    assert back_after_s >= 0.5, "reconnected without back-off"
    assert result.reconnects == 1
    assert result.errors == {"disconnected": 1}
    assert result.callerrors == {}
    assert result.timeouts == {}


async def test_fleet_over_tls_with_basic_auth(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    """Security profile 2: wss:// with the CSO CA trusted and HTTP Basic auth per station."""
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    password = "fleet-profile-two-password-0123"
    fleet_ids = [f"tls-{i}" for i in range(3)]
    try:
        assert running.registry is not None
        for identity in fleet_ids:
            record = StationRecord(
                identity=identity, profile=2, password_hash=hash_password(password)
            )
            await running.registry.put(record)
        url = f"wss://localhost:{running.gateway.tls_port}/ocpp"
        context = client_tls(pki.ca.cert_file)
        async with Fleet(
            url, FAST, "2.0.1", 3, "tls-", ssl_context=context, password=password
        ) as fleet:
            assert fleet.station_ids() == fleet_ids
            await fleet.until(lambda f: f.shared.transactions_completed >= 3, timeout_s=20)
        result = fleet.result()
    finally:
        await running.stop()
    assert result.boot.accepted == 3
    assert result.callerrors == {}
    assert result.errors == {}
