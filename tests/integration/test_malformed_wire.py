"""The malformed-frame table (tests/fixtures/frames/malformed.json, reliability.md §5.3) over a
live WebSocket: the exact CALLERROR, or silence, and the connection stays usable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from csms import app
from tests.integration.conftest import ws_url
from tests.integration.station import Station

TABLE = Path(__file__).parents[1] / "fixtures" / "frames" / "malformed.json"
TOKENS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
MAX_FRAME = 64 * 1024


def frame_text(row: dict[str, Any], version: str) -> str:
    if "frame_repeat" in row:
        spec = row["frame_repeat"]
        return str(spec.get("prefix", "") + spec["text"] * spec["times"] + spec.get("suffix", ""))
    frame = row["frame"]
    return str(frame[version] if isinstance(frame, dict) else frame)


def message_type(text: str) -> int | None:
    try:
        first = json.loads(text)[0]
    except (ValueError, IndexError, KeyError, TypeError, RecursionError):
        return None
    return first if isinstance(first, int) else None


def cases() -> list[Any]:
    rows = json.loads(TABLE.read_text())
    return [
        pytest.param(row, version, id=f"{row['id']}-{version}")
        for row in rows
        for version in row["expect"]
    ]


@pytest.mark.parametrize(("row", "version"), cases())
async def test_malformed_frame_over_the_wire(
    csms: app.Running, row: dict[str, Any], version: str
) -> None:
    expect = row["expect"][version]
    text = frame_text(row, version)
    station = await Station.connect(ws_url(csms, f"W-{row['id']}-{version}"), TOKENS[version])
    station.send_text(text)
    if len(text.encode()) > MAX_FRAME:
        # Over the message size limit: the WebSocket layer closes with 1009 (RFC 6455 §7.4.1).
        await asyncio.wait_for(station.listener.closed.wait(), 5)
        received = station.transport.close_handshake.recv
        assert received is not None
        assert received.code.value == 1009
        return
    kind = message_type(text)
    # Answered: CALLs and unreadable frames; on 2.0.1 also unknown message types (5, 6, 7...:
    # MessageTypeNotSupported). Never: responses (3, 4, and 5 on 2.1) and 2.1 SENDs.
    unknown_on_201 = version == "2.0.1" and kind is not None and kind not in (2, 3, 4)
    answered = kind in (None, 2) or unknown_on_201
    if "code" in expect and answered:
        reply = await station.receive()
        assert reply[:3] == [4, expect["unique_id"], expect["code"]], reply
        assert reply[4] == {}
    elif expect.get("ok") == "Call" and kind == 2:
        reply = await station.receive()
        assert reply[0] == 3, reply
    # Whatever happened, nothing else was sent, and the connection still works.
    assert (await station.call("Heartbeat", {}, unique_id="after"))[:2] == [3, "after"]
    await station.close()
