"""The rows of the malformed-input table (reliability.md §5.3) that are not a CALLERROR and so are
not in tests/fixtures/frames/malformed.json: frames the WebSocket layer must close on (M2, M3,
M34) and answers to nothing (M26). Over a live WebSocket, on 1.6 and 2.0.1. M24, M25 and M35
are in test_sessions.py."""

from __future__ import annotations

import asyncio
import json

import picows
import pytest

from csms import app
from tests.integration.conftest import ws_url
from tests.integration.station import Station

VERSIONS = [("1.6", "ocpp1.6"), ("2.0.1", "ocpp2.0.1")]


async def closed_with(station: Station) -> int | None:
    """The close code the server sent (waits up to 5 s for the close)."""
    await asyncio.wait_for(station.listener.closed.wait(), 5)
    received = station.transport.close_handshake.recv
    return None if received is None else int(received.code.value)


@pytest.mark.parametrize(("version", "token"), VERSIONS)
async def test_m2_invalid_utf8_in_a_text_frame_closes_1007(
    csms: app.Running, version: str, token: str
) -> None:
    station = await Station.connect(ws_url(csms, f"M2-{version}"), token)
    station.transport.send(picows.WSMsgType.TEXT, b'[2,"a1","Heartbeat",{"x":"\xff\xfe"}]')
    assert await closed_with(station) == 1007


@pytest.mark.parametrize(("version", "token"), VERSIONS)
async def test_m3_a_binary_frame_closes_1003(csms: app.Running, version: str, token: str) -> None:
    station = await Station.connect(ws_url(csms, f"M3-{version}"), token)
    station.transport.send(picows.WSMsgType.BINARY, b'[2,"a1","Heartbeat",{}]')
    assert await closed_with(station) == 1003


@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
async def test_m34_a_reserved_bit_without_an_extension_closes_1002(
    csms: app.Running, bit: str
) -> None:
    station = await Station.connect(ws_url(csms, f"M34-{bit}"), "ocpp2.0.1")
    station.transport.send(picows.WSMsgType.TEXT, b'[2,"a1","Heartbeat",{}]', **{bit: True})
    assert await closed_with(station) == 1002


@pytest.mark.parametrize(("version", "token"), VERSIONS)
async def test_m26_a_result_or_error_with_an_unknown_id_is_ignored(
    csms: app.Running, version: str, token: str
) -> None:
    station = await Station.connect(ws_url(csms, f"M26-{version}"), token)
    station.send_text(json.dumps([3, "never-asked", {}]))
    station.send_text(json.dumps([4, "never-asked-2", "GenericError", "", {}]))
    # No reply to either, no close: the next CALL's answer is the next frame received.
    assert (await station.call("Heartbeat", {}, unique_id="after"))[:2] == [3, "after"]
    await station.close()
