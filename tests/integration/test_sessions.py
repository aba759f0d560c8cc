"""Session rules: one live session per identity, dead peers detected, our CALLs answered."""

from __future__ import annotations

import asyncio
import json

import picows
import pytest

from csms import app
from csms.gateway.limits import STRIKES
from csms.gateway.session import CallErrorReceivedError
from csms.protocol import PayloadError
from tests.integration.conftest import read_all_events, restarted, ws_url
from tests.integration.station import Station, _Listener


async def test_a_newer_connection_replaces_the_old_one(csms: app.Running) -> None:
    old = await Station.connect(ws_url(csms, "CP-DUP"), "ocpp1.6")
    new = await Station.connect(ws_url(csms, "CP-DUP"), "ocpp1.6")
    await asyncio.wait_for(old.listener.closed.wait(), 5)
    assert (await new.call("Heartbeat", {}))[0] == 3
    assert csms.gateway.sessions["CP-DUP"].session_id
    await new.close()


@pytest.fixture
async def fast_ping(csms: app.Running) -> app.Running:
    """The same CSMS with its listener restarted to ping after 0.3 s idle."""
    return await restarted(csms, ping_interval_s=0.3, ping_timeout_s=0.3)


async def test_a_peer_that_stops_answering_pings_is_disconnected(fast_ping: app.Running) -> None:
    _, listener = await picows.ws_connect(
        _Listener,
        ws_url(fast_ping, "CP-DEAD"),
        extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
        enable_auto_pong=False,
    )
    assert isinstance(listener, _Listener)
    await asyncio.wait_for(listener.closed.wait(), 10)
    events = await read_all_events(fast_ping.nats_url, "CP-DEAD")
    assert [e.kind for e in events] == ["connected", "disconnected"]


@pytest.fixture
async def short_boot_timeout(csms: app.Running) -> app.Running:
    """The same CSMS with its listener restarted to close connections silent for 0.5 s."""
    return await restarted(csms, boot_timeout_s=0.5)


async def test_d2_a_connection_that_never_speaks_is_closed(
    short_boot_timeout: app.Running,
) -> None:
    """D2: upgraded, answering pings, but no OCPP message: closed with 1008 after the boot
    timeout; a station that sends anything (a reconnect without a boot) stays."""
    silent = await Station.connect(ws_url(short_boot_timeout, "CP-SILENT"), "ocpp1.6")
    talking = await Station.connect(ws_url(short_boot_timeout, "CP-TALKS"), "ocpp1.6")
    assert (await talking.call("Heartbeat", {}))[0] == 3
    await asyncio.wait_for(silent.listener.closed.wait(), 10)
    received = silent.transport.close_handshake.recv
    assert received is not None
    assert received.code == picows.WSCloseCode.POLICY_VIOLATION
    assert not talking.listener.closed.is_set()
    assert (await talking.call("Heartbeat", {}))[0] == 3
    await talking.close()
    events = await read_all_events(short_boot_timeout.nats_url, "CP-SILENT")
    assert [e.kind for e in events] == ["connected", "disconnected"]


async def _answer_next_call(station: Station, reply: object) -> str:
    call = await station.receive()
    assert call[0] == 2
    station.send_text(json.dumps(reply(call[1]) if callable(reply) else reply))
    return str(call[2])


async def test_csms_calls_get_validated_answers_and_errors(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CS-CMD"), "ocpp2.1")
    session = csms.gateway.sessions["cs-cmd"]
    reset = {"type": "Immediate"}

    ok = asyncio.create_task(session.call("Reset", reset))
    assert await _answer_next_call(station, lambda i: [3, i, {"status": "Accepted"}]) == "Reset"
    assert await ok == {"status": "Accepted"}

    failed = asyncio.create_task(session.call("Reset", reset))
    await _answer_next_call(station, lambda i: [4, i, "GenericError", "nope", {}])
    with pytest.raises(CallErrorReceivedError):
        await failed

    malformed = asyncio.create_task(session.call("Reset", reset))
    await _answer_next_call(station, lambda i: [3, i, {"status": "Maybe"}])
    with pytest.raises(PayloadError):
        await malformed
    # 2.1 FR.06: the station is told its CALLRESULT was not acceptable.
    answer = await station.receive()
    assert answer[0] == 5
    assert answer[2] == "PropertyConstraintViolation"

    with pytest.raises(PayloadError):
        await session.call("Reset", {"type": "Sometime"})  # refused before anything is sent
    await station.close()


async def test_station_calls_are_answered_while_our_call_is_pending(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CP-X16"), "ocpp1.6")
    session = csms.gateway.sessions["CP-X16"]
    pending = asyncio.create_task(session.call("ClearCache", {}))
    ours = await station.receive()
    assert ours[2] == "ClearCache"
    assert (await station.call("Heartbeat", {}))[0] == 3  # crossing CALLs are legal
    station.send_text(json.dumps([3, ours[1], {"status": "Accepted"}]))
    assert await pending == {"status": "Accepted"}
    await station.close()


async def test_a_2x_retry_with_the_same_id_gets_the_same_answer(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CS-RETRY"), "ocpp2.0.1")
    first = await station.call("Heartbeat", {}, unique_id="r1")
    await asyncio.sleep(0.01)  # let the clock move: a fresh answer would differ (currentTime)
    again = await station.call("Heartbeat", {}, unique_id="r1")
    assert again == first
    await station.close()


async def test_16_ids_are_per_connection_so_a_repeat_is_a_new_call(csms: app.Running) -> None:
    station = await Station.connect(ws_url(csms, "CP-REPEAT"), "ocpp1.6")
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
    first = await station.call("StartTransaction", start, unique_id="1")
    other = await station.call("StartTransaction", {**start, "meterStart": 5}, unique_id="1")
    assert first[2]["transactionId"] != other[2]["transactionId"]
    await station.close()


@pytest.mark.parametrize(
    ("subprotocol", "code"), [("ocpp1.6", "GenericError"), ("ocpp2.0.1", "RpcFrameworkError")]
)
async def test_a_call_repeated_while_in_progress_is_refused_not_run_twice(
    csms: app.Running, subprotocol: str, code: str
) -> None:
    """M24: both frames leave in one TCP write (client frames built by hand: FIN+text, masked
    with a zero key), so the second arrives while the first is in progress."""
    station = await Station.connect(ws_url(csms, f"CP-M24-{code}"), subprotocol)
    frame = json.dumps([2, "dup", "Heartbeat", {}])
    masked = b"\x81" + bytes([0x80 | len(frame)]) + b"\x00\x00\x00\x00" + frame.encode()
    station.transport.underlying_transport.write(masked + masked)  # one TCP write: both at once
    first, second = await station.receive(), await station.receive()
    assert first[0] == 3
    assert first[1] == "dup"
    assert second[:3] == [4, "dup", code]
    station_id = f"CP-M24-{code}" if subprotocol == "ocpp1.6" else f"cp-m24-{code}".lower()
    events = await read_all_events(csms.nats_url, station_id)  # 2.x identities: case-insensitive
    assert [(e.direction, e.message_type) for e in events if e.kind == "frame"] == [
        ("in", 2),
        ("out", 3),
        ("in", 2),
        ("out", 4),
    ]
    await station.close()


async def test_too_many_invalid_messages_close_the_connection_with_1008(
    csms: app.Running,
) -> None:
    """§5.6 strike budget: each invalid CALL still gets its CALLERROR; past the budget the
    connection is closed with 1008 after that reply. Other stations are unaffected."""
    bystander = await Station.connect(ws_url(csms, "CP-BYSTANDER"), "ocpp1.6")
    station = await Station.connect(ws_url(csms, "CP-STRIKES"), "ocpp1.6")
    for i in range(STRIKES + 1):
        answer = await station.call("NoSuchAction", {}, unique_id=f"bad{i}")
        assert answer[:3] == [4, f"bad{i}", "NotImplemented"]
    await asyncio.wait_for(station.listener.closed.wait(), 5)
    closed = station.transport.close_handshake
    assert closed is not None
    assert closed.recv is not None
    assert closed.recv.code == picows.WSCloseCode.POLICY_VIOLATION
    assert (await bystander.call("Heartbeat", {}))[0] == 3
    await bystander.close()
