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


class Origin(msgspec.Struct, frozen=True):
    """What every event of one station session shares."""

    node_id: str
    session_id: str
    station_id: str
    ocpp_version: str

    def event_id(self, seq: int) -> str:
        return f"{self.node_id}-{self.session_id}-{seq}"

    def exchange(
        self,
        seq: int,
        unique_id: str,
        action: str,
        call: str,
        call_at_ns: int,
        answer_type: int,
        answer: str,
        answer_at_ns: int,
    ) -> tuple[FrameEvent, FrameEvent]:
        """A station's CALL (event ``seq``) and our answer to it (event ``seq + 1``)."""
        return (
            self.frame(seq, "in", 2, unique_id, action, call, call_at_ns),
            self.frame(seq + 1, "out", answer_type, unique_id, action, answer, answer_at_ns),
        )

    def frame(
        self,
        seq: int,
        direction: Direction,
        message_type: int,
        unique_id: str | None,
        action: str | None,
        raw: str,
        at_ns: int,
    ) -> FrameEvent:
        return FrameEvent(
            event_id=self.event_id(seq),
            kind="frame",
            station_id=self.station_id,
            ocpp_version=self.ocpp_version,
            direction=direction,
            message_type=message_type,
            unique_id=unique_id,
            action=action,
            raw=raw,
            received_at_ns=at_ns,
            node_id=self.node_id,
            session_id=self.session_id,
            seq=seq,
        )
