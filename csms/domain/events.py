"""The immutable event every OCPP frame and every connect/disconnect becomes.

Wire type ``csms.frame`` version 1. The frame is kept exactly as received or sent (``raw``), so
projections can always be rebuilt from the stream, whatever they parse later.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

EVENT_TYPE: Final = "csms.frame"
EVENT_VERSION: Final = 1

Kind = Literal["frame", "connected", "disconnected", "security", "command"]
"""``security``: a refused connection (``reason`` = event type and why; no session).
``command``: an operator's command and its outcome (``raw`` = a ``csms.command`` record)."""
Direction = Literal["in", "out"]


class FrameEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One frame in or out of a station connection, or the connection opening or closing."""

    event_id: str
    """``<node>-<session>-<seq>``: unique, and the JetStream ``Nats-Msg-Id`` (retries dedupe)."""
    kind: Kind
    station_id: str
    ocpp_version: str
    direction: Direction
    """``in``: sent by the station; ``out``: sent by us (connection events: ``in``)."""
    message_type: int
    """2 CALL, 3 CALLRESULT, 4 CALLERROR, 5 CALLRESULTERROR, 6 SEND; 0 for connection events."""
    unique_id: str | None
    action: str | None
    raw: str
    """The frame text exactly as received or sent ("" for connection events)."""
    received_at_ns: int
    """Wall-clock time (ns since the epoch, UTC) the gateway read or wrote the frame."""
    node_id: str
    session_id: str
    seq: int
    """Order of the event within its session (connected = 0)."""
    reason: str | None = None
    """Why a connection closed, or why a frame was refused."""
    type: str = EVENT_TYPE
    version: int = EVENT_VERSION
