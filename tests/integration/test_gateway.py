"""The gateway end to end: real nats-server, real picows sockets, events read back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import picows
import pytest

from csms import app
from csms.handlers.routing import ROUTES, SEND_ONLY
from csms.protocol import CallResult, Codec, schema_dir
from streams.embedded import EmbeddedNats, free_port
from tests.integration.conftest import loopback_settings, read_events, ws_url
from tests.integration.station import Station

CORPUS = Path(__file__).parents[1] / "fixtures" / "ocpp"
FOLDER = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
NOW = "2026-11-21T10:00:00Z"


def station_codec(version: str) -> Codec:
    return Codec(version, schema_dir(version), role="station")


def assert_valid_result(version: str, action: str, frame: list[Any]) -> dict[str, Any]:
    """The answer must be a CALLRESULT whose payload conforms to the response schema."""
    assert frame[0] == 3, frame
    decoded = station_codec(version).decode(json.dumps(frame).encode())
    assert isinstance(decoded, CallResult)
    station_codec(version).check_response(action, decoded)
    payload: dict[str, Any] = decoded.payload
    return payload


async def test_16_transaction_end_to_end(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CP-16"), "ocpp1.6")
    assert station.subprotocol == "ocpp1.6"
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": NOW}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("BootNotification", boot),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
        ("Authorize", {"idTag": "TAG1"}),
        ("StartTransaction", start),
        ("StartTransaction", start),  # a retry: the answer was lost, say
    ]
    answers = [assert_valid_result("1.6", a, await station.call(a, p)) for a, p in steps]
    assert answers[0]["status"] == "Accepted"
    transaction_id = answers[3]["transactionId"]
    assert answers[4]["transactionId"] == transaction_id
    sample = {"value": "1.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": NOW, "sampledValue": [sample]}],
    }
    stop = {"transactionId": transaction_id, "meterStop": 2500, "timestamp": NOW, "idTag": "TAG1"}
    for action, payload in [("MeterValues", meter), ("StopTransaction", stop)]:
        assert_valid_result("1.6", action, await station.call(action, payload))
    await station.close()

    events = await read_events(csms.nats_url, "CP-16", 1 + 2 * 7 + 1)
    assert [e.seq for e in events] == list(range(16))
    assert events[0].kind == "connected"
    assert events[-1].kind == "disconnected"
    frames = events[1:-1]
    assert [e.direction for e in frames] == ["in", "out"] * 7
    assert [e.message_type for e in frames] == [2, 3] * 7
    for call, result in zip(frames[::2], frames[1::2], strict=True):
        assert call.unique_id == result.unique_id
        assert call.action == result.action
        assert json.loads(call.raw)[0] == 2
    assert len({e.event_id for e in events}) == len(events)


async def test_201_transaction_events(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CS-201"), "ocpp2.0.1")
    boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
    assert_valid_result("2.0.1", "BootNotification", await station.call("BootNotification", boot))
    base = {"timestamp": NOW, "transactionInfo": {"transactionId": "tx-1"}}
    started = {
        **base,
        "eventType": "Started",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "idToken": {"idToken": "TOKEN", "type": "ISO14443"},
        "evse": {"id": 1, "connectorId": 1},
    }
    answer = assert_valid_result(
        "2.0.1", "TransactionEvent", await station.call("TransactionEvent", started)
    )
    assert answer["idTokenInfo"]["status"] == "Accepted"
    ended = {**base, "eventType": "Ended", "triggerReason": "EVDeparted", "seqNo": 1}
    assert (
        assert_valid_result(
            "2.0.1", "TransactionEvent", await station.call("TransactionEvent", ended)
        )
        == {}
    )
    await station.close()
    events = await read_events(csms.nats_url, "cs-201", 8)  # 2.x identities are case-insensitive
    assert [e.action for e in events[1:7]] == ["BootNotification"] * 2 + ["TransactionEvent"] * 4


def corpus_requests(version: str, action: str) -> list[dict[str, Any]]:
    folder = CORPUS / FOLDER[version] / action / "valid"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("gen-request-*.json"))]


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_every_station_action_gets_a_schema_valid_answer(
    csms: app.Running, version: str
) -> None:
    token = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}[version]
    station = await Station.connect(ws_url(csms, f"ALL-{FOLDER[version]}"), token)
    answered = 0
    for route_version, action in sorted(ROUTES):
        if route_version != version:
            continue
        payloads = corpus_requests(version, action)
        assert payloads, f"no corpus requests for {version} {action}"
        for payload in payloads:
            assert_valid_result(version, action, await station.call(action, payload))
            answered += 1
    for send_version, action in SEND_ONLY:
        if send_version == version:
            for payload in corpus_requests(version, action):
                station.send_text(json.dumps([6, "send-1", action, payload]))
            # SENDs are never answered: the next answer we see is the Heartbeat's.
            assert (await station.call("Heartbeat", {}))[0] == 3
    assert answered >= 2 * len([r for r in ROUTES if r[0] == version])
    await station.close()


@pytest.mark.parametrize(
    ("version", "token", "code"),
    [("1.6", "ocpp1.6", "FormationViolation"), ("2.0.1", "ocpp2.0.1", "RpcFrameworkError")],
)
async def test_malformed_frame_gets_the_versions_callerror(
    csms: app.Running, version: str, token: str, code: str
) -> None:
    station = await Station.connect(ws_url(csms, f"BAD-{FOLDER[version]}"), token)
    station.send_text('[2,"a1","Heartbeat",{}')
    answer = await station.receive()
    assert answer[:3] == [4, "-1", code]
    assert answer[4] == {}
    # The connection stays open and usable.
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


async def test_no_common_subprotocol_is_refused(csms: app.Running) -> None:
    with pytest.raises(picows.WSError):
        await Station.connect(ws_url(csms, "CP-X"), "ocpp0.1")


async def test_two_gateways_allocate_distinct_transaction_ids(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    first = await app.start(loopback_settings(tmp_path, nats_server.url, "gw1"))
    second = await app.start(loopback_settings(tmp_path, nats_server.url, "gw2"))
    try:
        stations = [
            await Station.connect(ws_url(gw, f"CP-{i}"), "ocpp1.6")
            for i, gw in enumerate([first, second] * 3)
        ]

        async def starts(i: int, station: Station) -> list[int]:
            ids = []
            for n in range(10):
                payload = {"connectorId": 1, "idTag": "T", "meterStart": n, "timestamp": NOW}
                ids.append((await station.call("StartTransaction", payload))[2]["transactionId"])
            return ids

        results = await asyncio.gather(*(starts(i, s) for i, s in enumerate(stations)))
        all_ids = [i for ids in results for i in ids]
        assert len(all_ids) == 60
        assert len(set(all_ids)) == 60
        for station in stations:
            await station.close()
    finally:
        await first.stop()
        await second.stop()


async def test_no_answer_before_the_event_is_stored(tmp_path: Path) -> None:
    """Write-ahead: with NATS down the CALL is not answered; when NATS returns, it is, and the
    event is in the stream."""
    store, port = tmp_path / "nats", free_port()
    server = EmbeddedNats(store, port=port)
    await server.start()
    running = await app.start(loopback_settings(tmp_path, server.url, "wa"))
    try:
        station = await Station.connect(ws_url(running, "CP-WA"), "ocpp1.6")
        assert (await station.call("Heartbeat", {}))[0] == 3
        await server.stop()
        station.send_text('[2,"while-down","Heartbeat",{}]')
        with pytest.raises(TimeoutError):
            await station.receive(timeout_s=1.5)
        server = EmbeddedNats(store, port=port)
        await server.start()
        answer = await station.receive(timeout_s=30)
        assert answer[:2] == [3, "while-down"]
        events = await read_events(server.url, "CP-WA", 5)
        assert [e.unique_id for e in events[1:5]] == ["m1", "m1", "while-down", "while-down"]
        await station.close()
    finally:
        await running.stop()
        await server.stop()


@pytest.mark.parametrize(
    ("version", "token", "expected"),
    [
        ("1.6", "ocpp1.6", None),  # ignored (1.6 §4.1.3)
        ("2.0.1", "ocpp2.0.1", [4, "a7", "MessageTypeNotSupported"]),  # Part 4 §4.4
        ("2.1", "ocpp2.1", None),  # ignored (2.1 §4.1.3, §4.4)
    ],
)
async def test_unknown_message_types_per_version(
    csms: app.Running, version: str, token: str, expected: list[Any] | None
) -> None:
    station = await Station.connect(ws_url(csms, f"MT-{FOLDER[version]}"), token)
    station.send_text('[7,"a7","Heartbeat",{}]')
    if expected is not None:
        assert (await station.receive())[:3] == expected
    # Nothing else is sent for it: the next frame we see answers our Heartbeat.
    assert (await station.call("Heartbeat", {}, unique_id="hb"))[:2] == [3, "hb"]
    await station.close()


async def test_a_nats_cluster_url_list_with_a_node_down_still_serves(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """``nats_url`` may list several servers (a cluster); one that is down is skipped by every
    connection of the process (nats-py, the event writer, projections)."""
    urls = f"nats://127.0.0.1:{free_port()},{nats_server.url}"
    running = await app.start(loopback_settings(tmp_path, urls))
    try:
        station = await Station.connect(ws_url(running, "CP-CLUSTER"), "ocpp1.6")
        assert (await station.call("Heartbeat", {}))[0] == 3
        await station.close()
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("version", "subprotocol", "boot", "other"),
    [
        (
            "1.6",
            "ocpp1.6",
            {"chargePointVendor": "V", "chargePointModel": "M"},
            ("Heartbeat", {}),
        ),
        (
            "2.0.1",
            "ocpp2.0.1",
            {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
            ("Heartbeat", {}),
        ),
    ],
)
async def test_m28_calls_after_a_refused_boot_get_security_error(
    csms: app.Running,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
    subprotocol: str,
    boot: dict[str, Any],
    other: tuple[str, dict[str, Any]],
) -> None:
    """A BootNotification answered Rejected (a policy a registry may set): every other CALL of
    the session gets SecurityError until a boot is accepted (reliability.md M28, A26)."""
    accepted = ROUTES[(version, "BootNotification")]

    def rejected(ctx: Any, request: Any) -> dict[str, Any]:
        return {**accepted(ctx, request), "status": "Rejected"}  # type: ignore[dict-item]

    monkeypatch.setitem(ROUTES, (version, "BootNotification"), rejected)
    station = await Station.connect(ws_url(csms, f"CP-M28-{version}"), subprotocol)
    answer = await station.call("BootNotification", boot)
    assert answer[0] == 3
    assert answer[2]["status"] == "Rejected"
    refused = await station.call(*other)
    assert refused[:3] == [4, refused[1], "SecurityError"], refused
    monkeypatch.setitem(ROUTES, (version, "BootNotification"), accepted)
    answer = await station.call("BootNotification", boot)
    assert answer[2]["status"] == "Accepted"
    assert (await station.call(*other))[0] == 3
    await station.close()
