"""Limits under abuse (reliability.md §5.6) against a real gateway: the limit holds and a
legitimate station still gets through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from pathlib import Path

import picows
import pytest
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from csms import app
from csms.gateway.auth import AuthConfig
from csms.gateway.limits import (
    REPLACEMENTS_BEFORE_REFUSAL,
    TLS_HANDSHAKE_BURST,
    TLS_HANDSHAKES_PER_S,
)
from streams.embedded import EmbeddedNats
from tests.integration.api_support import until
from tests.integration.conftest import restarted, ws_url
from tests.integration.secure_client import basic, client_tls, connect, upgrade
from tests.integration.station import Station
from tests.integration.test_security import P2, make_pki, start_secure

MIB = 1024 * 1024


class CloseRecorder(WSListener):
    """Remembers the close code the server sent."""

    def __init__(self) -> None:
        self.code: WSCloseCode | None = None
        self.closed = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.code = frame.get_close_code()
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()


async def open_recorder(url: str) -> tuple[WSTransport, CloseRecorder]:
    transport, listener = await picows.ws_connect(
        CloseRecorder,
        url,
        extra_headers={"Sec-WebSocket-Protocol": "ocpp2.0.1"},
        max_frame_size=4 * MIB,
    )
    assert isinstance(listener, CloseRecorder)
    return transport, listener


@pytest.fixture
async def guarded(csms: app.Running) -> app.Running:
    """The CSMS with its listener restarted: 1 s handshake timeout, 5 pending per address."""
    return await restarted(csms, handshake_timeout_s=1.0, max_pending_handshakes_per_address=5)


def slow_client(port: int, start: float) -> float:
    """Connect, send half a request line and never the rest; return when the server hung up.
    (A blocking socket in a thread: an aborted connect must not touch the event loop.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /ocpp/slow HTTP/1.1\r\nHost: x\r\n")
            while sock.recv(1024):
                pass
    except OSError:
        pass  # reset: closed too
    return time.monotonic() - start


async def test_d1_slowloris_is_capped_per_address_and_timed_out(guarded: app.Running) -> None:
    port = guarded.gateway.port
    start = time.monotonic()
    attackers = asyncio.gather(*(asyncio.to_thread(slow_client, port, start) for _ in range(8)))
    # A legitimate station from another address connects while the attacker's are pending.
    station = await connect(ws_url(guarded, "LEGIT"), local_address="127.0.0.2")
    assert (await station.call("Heartbeat", {}))[0] == 3
    connected_after = time.monotonic() - start
    closed_at = sorted(await asyncio.wait_for(attackers, 10))
    assert closed_at[2] < 0.9, closed_at  # the 3 over the cap: dropped at once
    assert all(0.9 < t < 2.0 for t in closed_at[3:]), closed_at  # the 5: by the timeout
    assert connected_after < 1.0
    await station.close()


async def test_d1_connections_after_refusals_at_the_cap_are_served(guarded: app.Running) -> None:
    """A connection dropped at the pending cap must leave nothing behind: the stations that
    connect next (their sockets may reuse the dropped ones' descriptor numbers) are read and
    upgraded, not left hanging until the handshake timeout (found by bench.abuse)."""
    port = guarded.gateway.port
    held = [
        await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
        for _ in range(5 + 10)  # the cap (5 in this fixture), then 10 dropped at once
    ]
    try:
        for reader, _ in held[5:]:  # the dropped ones are closed by the gateway
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
        for i in range(16):  # one at a time: the fixture's cap is 5 per address
            station = await connect(ws_url(guarded, f"AFTER-{i}"), local_address="127.0.0.2")
            assert (await station.call("Heartbeat", {}))[0] == 3
            await station.close()
    finally:
        for _, writer in held:
            writer.close()


async def test_d4_d6_oversized_frames_close_1009_before_buffering(csms: app.Running) -> None:
    transport, listener = await open_recorder(ws_url(csms, "BIG"))
    transport.send(WSMsgType.TEXT, b"[" + b" " * MIB + b"]")  # D4: one 1 MiB frame
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.code == WSCloseCode.MESSAGE_TOO_BIG

    # D6: a header claiming 2^63-1 bytes, then nothing: the header alone is refused.
    reader, writer = await asyncio.open_connection("127.0.0.1", csms.gateway.port)
    writer.write(
        b"GET /ocpp/HUGE HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"\x81\xff" + struct.pack("!Q", 2**63 - 1) + os.urandom(4))
    close = await asyncio.wait_for(reader.read(4), 5)
    assert close[0] == 0x88
    assert struct.unpack("!H", close[2:4])[0] == 1009
    writer.close()


async def test_d5_fragmented_message_over_the_cap_closes_1009(csms: app.Running) -> None:
    transport, listener = await open_recorder(ws_url(csms, "FRAG"))
    chunk = b" " * (16 * 1024)
    transport.send(WSMsgType.TEXT, b"[" + chunk, fin=False)
    for _ in range(63):  # 1 MiB in all; the server stops us at 64 KiB
        if transport.is_disconnected:
            break
        transport.send(WSMsgType.CONTINUATION, chunk, fin=False)
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.code == WSCloseCode.MESSAGE_TOO_BIG


async def test_d10_no_compression_is_negotiated(csms: app.Running) -> None:
    answer = await upgrade(csms.gateway.port, "/ocpp/DEFLATE")
    assert answer.status == 101
    assert "sec-websocket-extensions" not in answer.headers  # so no inflate bomb (D10)


async def test_d11_many_connections_of_one_identity_leave_one_session(csms: app.Running) -> None:
    outcomes = await asyncio.gather(
        *(Station.connect(ws_url(csms, "CROWD"), "ocpp2.0.1") for _ in range(20)),
        return_exceptions=True,
    )
    stations = [s for s in outcomes if isinstance(s, Station)]
    refused = [e for e in outcomes if not isinstance(e, Station)]
    # the first one and at least REPLACEMENTS_BEFORE_REFUSAL replacements were served; past
    # that budget a connection that would replace the live session again is refused (429)
    assert len(stations) >= 1 + REPLACEMENTS_BEFORE_REFUSAL
    assert all(isinstance(e, picows.WSError) for e in refused), refused
    closings = {asyncio.ensure_future(s.listener.closed.wait()): s for s in stations}
    closed, pending = 0, set(closings)
    while closed < len(stations) - 1 and pending:  # every replaced one closes
        more, pending = await asyncio.wait(pending, timeout=10, return_when="FIRST_COMPLETED")
        assert more, "replaced connections did not close"
        closed += len(more)
    assert len(pending) == 1  # exactly one is left, and it is the live session
    survivor = closings[next(iter(pending))]
    assert (await survivor.call("Heartbeat", {}))[0] == 3
    assert list(csms.gateway.sessions) == ["crowd"]
    port = csms.gateway.port
    assert (await upgrade(port, "/ocpp/CROWD")).status == 429  # would replace it again
    assert list(csms.gateway.sessions) == ["crowd"]
    assert (await survivor.call("Heartbeat", {}))[0] == 3  # the live session was left alone
    await survivor.close()
    await until(lambda: "crowd" not in csms.gateway.sessions)  # the gateway saw the close
    fresh = await Station.connect(ws_url(csms, "CROWD"), "ocpp2.0.1")  # not a replacement
    assert (await fresh.call("Heartbeat", {}))[0] == 3
    await fresh.close()


async def test_d3_tls_handshake_flood_from_one_address(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    try:
        port, context = running.gateway.tls_port, client_tls(pki.ca.cert_file)
        start = time.monotonic()
        answers = [await upgrade(port, "/ocpp/SP1-A", tls=context) for _ in range(80)]
        elapsed = time.monotonic() - start
        completed = [a for a in answers if not a.during_tls_handshake]
        assert len(completed) <= TLS_HANDSHAKE_BURST + TLS_HANDSHAKES_PER_S * elapsed + 1
        assert len(completed) >= TLS_HANDSHAKE_BURST  # the burst itself is served
        assert {a.status for a in completed} <= {401, 429}  # HTTP reached: auth, throttle
        # another address is not affected
        legit = await upgrade(port, "/ocpp/SP2", authorization=basic("SP2", P2), tls=context,
                              local_address="127.0.0.2")  # fmt: skip
        assert legit.status == 101
    finally:
        await running.stop()


class PongCounter(CloseRecorder):
    """Counts the server's pongs, remembers its close code."""

    def __init__(self) -> None:
        super().__init__()
        self.pongs = 0
        self.pong = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.PONG:
            self.pongs += 1
            self.pong.set()
        super().on_ws_frame(transport, frame)


async def test_d8_pings_are_answered_within_a_budget_and_a_flood_closes_1008(
    csms: app.Running,
) -> None:
    transport, listener = await picows.ws_connect(
        PongCounter, ws_url(csms, "D8"), extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"}
    )
    assert isinstance(listener, PongCounter)
    transport.send_ping(b"hello")
    await asyncio.wait_for(listener.pong.wait(), 5)  # one ping: one pong
    assert listener.pongs == 1
    for _ in range(1000):  # a flood: the budget (burst 10, 2/s) runs out long before
        transport.send_ping(b"x")
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.code == WSCloseCode.POLICY_VIOLATION
    assert listener.pongs <= 12
    other = await Station.connect(ws_url(csms, "D8-other"), "ocpp1.6")
    assert (await other.call("Heartbeat", {}))[0] == 3
    await other.close()


async def ping_flood(url: str) -> WSCloseCode | None:
    """Connect, flood pings until the server closes; the close code it sent."""
    transport, listener = await picows.ws_connect(
        PongCounter, url, extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"}
    )
    assert isinstance(listener, PongCounter)
    for _ in range(1000):
        transport.send_ping(b"x")
    await asyncio.wait_for(listener.closed.wait(), 5)
    return listener.code


async def test_d8_a_flooder_that_reconnects_is_refused_before_the_upgrade(
    csms: app.Running,
) -> None:
    """Closed for abuse ``abuse_closes_per_identity_address`` times, the pair's next upgrade is
    refused with 429 (no session, no OCPP); other identities and addresses are served."""
    budget = AuthConfig().abuse_closes_per_identity_address
    for _ in range(budget):
        assert await ping_flood(ws_url(csms, "D8-AGAIN")) == WSCloseCode.POLICY_VIOLATION
    port = csms.gateway.port
    assert (await upgrade(port, "/ocpp/D8-AGAIN", subprotocol="ocpp1.6")).status == 429
    assert "D8-AGAIN" not in csms.gateway.sessions
    neighbour = await Station.connect(ws_url(csms, "D8-NEIGHBOUR"), "ocpp1.6")  # same address
    assert (await neighbour.call("Heartbeat", {}))[0] == 3
    await neighbour.close()
    elsewhere = await upgrade(port, "/ocpp/D8-AGAIN", subprotocol="ocpp1.6",
                              local_address="127.0.0.2")  # fmt: skip
    assert elsewhere.status == 101  # the same identity from another address


@pytest.fixture
async def short_flood(csms: app.Running) -> app.Running:
    """The CSMS with its listener restarted to close a station flooding for 0.5 s."""
    return await restarted(csms, flood_s=0.5)


@pytest.mark.parametrize("per_turn", [200, 10], ids=["40k-per-s", "2k-per-s"])
async def test_d7_calls_without_waiting_close_1008_others_still_served(
    short_flood: app.Running, per_turn: int
) -> None:
    """D7: a station that keeps sending CALLs without waiting for the answers (FR.01) is read
    one frame at a time (reading paused when 8 wait), then closed with 1008 once frames kept
    waiting behind each other for ``flood_s``, also at a rate the gateway keeps up with;
    another station is answered meanwhile."""
    transport, listener = await picows.ws_connect(
        CloseRecorder,
        ws_url(short_flood, "D7"),
        extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
    )
    assert isinstance(listener, CloseRecorder)
    other = await Station.connect(ws_url(short_flood, "D7-other"), "ocpp1.6")

    async def flood() -> None:
        sent = 0
        while not listener.closed.is_set() and not transport.is_disconnected:
            for _ in range(per_turn):  # 10 per 5 ms: a rate the gateway keeps up with
                transport.send(WSMsgType.TEXT, b'[2,"f%d","Heartbeat",{}]' % sent)
                sent += 1
            await asyncio.sleep(0.005)  # let the loop run: the flood is sustained, not one burst

    flooding = asyncio.create_task(flood())
    try:
        assert (await asyncio.wait_for(other.call("Heartbeat", {}), 5))[0] == 3
        await asyncio.wait_for(listener.closed.wait(), 10)
        assert listener.code == WSCloseCode.POLICY_VIOLATION
        assert (await asyncio.wait_for(other.call("Heartbeat", {}), 5))[0] == 3
    finally:
        flooding.cancel()
        await other.close()


async def test_d7_bursts_the_gateway_keeps_up_with_are_closed_too(short_flood: app.Running) -> None:
    """D7: bursts of 5 CALLs without waiting, the next burst as soon as all 5 are answered: the
    queue empties between bursts, but never for a second, so the flood clock runs on."""
    station = await Station.connect(ws_url(short_flood, "D7-bursts"), "ocpp1.6")
    sent = 0
    give_up = asyncio.get_running_loop().time() + 10  # flood_s is 0.5 s
    while not station.listener.closed.is_set() and asyncio.get_running_loop().time() < give_up:
        for _ in range(5):
            station.send_text(b'[2,"b%d","Heartbeat",{}]' % sent)
            sent += 1
        for _ in range(5):
            receive = asyncio.ensure_future(station.listener.frames.get())
            closed = asyncio.ensure_future(station.listener.closed.wait())
            done, _ = await asyncio.wait(
                {receive, closed}, timeout=10, return_when="FIRST_COMPLETED"
            )
            assert done, "neither an answer nor a close within 10 s"
            receive.cancel()
            closed.cancel()
            if station.listener.closed.is_set():
                break
    assert station.listener.closed.is_set(), f"not closed after {sent} CALLs in 10 s"
    received = station.transport.close_handshake.recv
    assert received is not None
    assert received.code == WSCloseCode.POLICY_VIOLATION
    assert sent > 10  # it ran a while first
