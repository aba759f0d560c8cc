"""One station connection: frames in order, write-ahead events, answers, our own CALLs.

Lifetimes: picows frames are borrowed and valid only inside ``on_ws_frame``; we copy the payload
there (``get_payload_as_bytes``). Frames are processed one at a time, in order: the next starts
when the previous one is stored (and answered). Every inbound frame becomes an event that
JetStream has stored before the frame is answered (write-ahead).

The common case, a valid CALL whose handler answers without I/O, runs entirely in callbacks:
decode, answer and submit the CALL and its answer as one stream message in ``on_ws_frame``; send
the answer from the PubAck callback. No task, no queue hop. Everything else (refusals, station
answers to our CALLs, handlers that await) takes the slow path, a task per frame. A backlog of
``INBOUND_QUEUE`` frames pauses reading from the socket (backpressure, never unbounded buffering).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from csms.domain.events import Direction, FrameEvent, Kind, Origin
from csms.domain.flags import CHECKED_ACTIONS, meter_flag
from csms.gateway.limits import PingBudget, StrikeBudget
from csms.handlers.context import Flagged, HandlerContext
from csms.handlers.routing import ACKNOWLEDGED, ROUTES, SEND_ONLY
from csms.ports import EventSink
from csms.protocol import (
    Call,
    CallError,
    CallResult,
    Codec,
    Ignored,
    MessageTypeError,
    OcppError,
    may_hold_negative,
)

log = logging.getLogger(__name__)

TEXT = WSMsgType.TEXT
monotonic, time_ns = time.monotonic, time.time_ns  # bound once: read per frame

ANSWER_CACHE = 32
"""2.x answers remembered per session, for retries that reuse the message id (M25)."""
BOOT_EXEMPT = frozenset({"BootNotification", "SignCertificate"})
"""Answered even while the boot is refused or Pending on 1.6 (M28): a Pending station may send
what the CSMS triggered (1.6 §4.2), here the CSR of an A18 renewal; SignCertificate is Rejected
anyway unless the CSMS started a renewal."""

INBOUND_QUEUE = 8
FLOOD_QUEUE = 4
"""Frames waiting behind the one in progress that start the D7 clock (see ``keepalive``)."""
FLOOD_STEP_S = 0.005
"""While flooding, a station's next frame waits this long (at most 200 frames/s)."""
CALM_S = 1.0
"""An empty queue for this long ends a flood (a flood the gateway nearly keeps up with empties
the queue between bursts, and must not restart the clock each time)."""
"""Frames read ahead of processing before the socket is paused (one CALL at a time is the rule)."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    node_id: str
    call_timeout_s: float = 30.0
    on_abuse: Callable[[str, str, str], None] | None = None
    """(station id, peer address, reason) of a connection closed with 1008 for abuse (ping
    flood, CALL flood, strike budget): the gateway's admission throttles it (D7, D8, D12)."""


class StationSession(WSListener):
    """The listener of one station connection (see the module docstring)."""

    __slots__ = (
        "_answered",
        "_arrival",
        "_arrivals",
        "_backlog",
        "_boot_refused",
        "_busy",
        "_call_lock",
        "_calm_from",
        "_closed",
        "_current",
        "_done",
        "_flag",
        "_flooding_since",
        "_fragments",
        "_last_seen",
        "_on_closed",
        "_opened_at",
        "_origin",
        "_paused",
        "_pending",
        "_ping_sent",
        "_pings",
        "_recent",
        "_reply",
        "_seq",
        "_strikes",
        "_struck_out",
        "_transport",
        "_worker",
        "codec",
        "config",
        "context",
        "session_id",
        "sink",
        "station_id",
    )

    def __init__(
        self,
        station_id: str,
        codec: Codec,
        context: HandlerContext,
        sink: EventSink,
        config: SessionConfig,
        on_closed: Callable[[StationSession], None],
    ) -> None:
        self.station_id = station_id
        self.codec = codec
        self.context = context
        self.sink = sink
        self.config = config
        self.session_id = uuid.uuid4().hex[:12]
        self._on_closed = on_closed
        self._seq = 0
        """The next event's number within the session (connected = 0)."""
        self._origin: Origin | None = None
        self._reply: bytes | None = None
        """The answer waiting for the PubAck of its CALL's event (fast path)."""
        self._backlog: deque[tuple[str, bytes, int]] | None = None
        """Frames waiting while one is in progress (created on first need: most never wait)."""
        self._busy = False
        self._current: str | None = None
        """The message id of the station CALL in progress."""
        self._arrivals = 0
        self._arrival = 0
        """Arrival number of the frame in progress."""
        self._recent: dict[str, int] | None = None
        """M24: ids of CALLs answered while frames waited, with the arrival count at the answer:
        a waiting CALL that arrived before the answer to its id is a duplicate in flight."""
        self._paused = False
        self._flooding_since = 0.0
        """When ``FLOOD_QUEUE`` frames were waiting behind the one in progress, and frames kept
        queueing since (the queue never stayed empty for ``CALM_S``): a station that waits for
        our answers (OCPP-J FR.01) never does that; one retrying while NATS is away adds a
        frame per call timeout, not per millisecond (D7)."""
        self._calm_from = 0.0
        """During a flood: when the queue last emptied."""
        self._pings: PingBudget | None = None
        """Made at the first ping from the station (D8)."""
        self._fragments = bytearray()
        self._last_seen = self._opened_at = time.monotonic()  # one float for both
        self._ping_sent = 0.0
        """When our unanswered keep-alive ping left (0: none outstanding)."""
        self._strikes: StrikeBudget | None = None
        self._struck_out = False
        self._boot_refused = False
        self._flag: str | None = None
        """What csms.domain.flags found suspicious in the CALL being answered (M30/M31): goes
        into that CALL's stored event as ``reason``."""
        """Our answer to this session's BootNotification refused it (ADR 0002, M28): every other
        CALL gets SecurityError until a BootNotification is accepted."""
        """Too many peer-caused CALLERRORs: close with 1008 once the current reply is sent."""
        self._transport: WSTransport | None = None
        self._worker: asyncio.Task[None] | None = None
        """The slow path's task of the frame in progress, if any."""
        self._call_lock: asyncio.Lock | None = None
        self._pending: tuple[str, str, asyncio.Future[dict[str, Any]]] | None = None
        self._done = False
        self._closed: asyncio.Event | None = None
        self._answered: OrderedDict[str, tuple[str, bytes]] | None = None
        """2.x answers by message id (created on the first 2.x answer)."""

    @property
    def closed(self) -> asyncio.Event:
        """Set once the disconnected event is stored (created on demand: an idle session holds
        no Event, Lock or deque; memory per idle connection is a target)."""
        if self._closed is None:
            self._closed = asyncio.Event()
            if self._done:
                self._closed.set()
        return self._closed

    # -- picows callbacks (synchronous) -------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._busy = True  # frames wait until the connected event is stored
        self.sink.submit((self._event("connected", "in", 0, None, None, ""),), self._next)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self._last_seen = monotonic()
        kind = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            # M34: no extension is ever negotiated, so a set RSV bit is a protocol error
            # (RFC 6455 §5.2); picows passes such frames through unchecked.
            self.close(WSCloseCode.PROTOCOL_ERROR, "RSV bit set without a negotiated extension")
        elif kind == TEXT and frame.fin and not self._fragments:  # the common case
            data = frame.get_payload_as_bytes()
            if len(data) > self.codec.max_frame_bytes:
                self.close(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            elif self._busy or self._recent is not None or self._boot_refused:
                self._enqueue("frame", data)
            else:
                # The commonest CALLs (MeterValues, StatusNotification, a TransactionEvent
                # without an idToken) are answered with the empty payload: decoded, validated
                # and answered in one Rust call, with the answer ``_outcome`` would give, and
                # stored here without the general path's hops (``_enqueue``, ``_dispatch``,
                # ``_fast``, ``_submit_answer``: this is the gateway's hottest code). A true
                # 2.x retry (same id, same frame) gets the same bytes the answer cache would;
                # a different frame reusing an answered id (a station breaking id uniqueness)
                # gets its own answer, not the cached one, and is not cached itself.
                quick = self.codec.acknowledge(
                    data, ACKNOWLEDGED[self.context.ocpp_version], CHECKED_ACTIONS
                )
                arrival = self._arrivals
                self._arrivals = arrival + 1
                self._busy = True
                self._arrival = arrival
                if quick is None or transport.is_disconnected:
                    if quick is not None or not self._decoded(data):
                        self._worker = asyncio.get_running_loop().create_task(self._slow(data))
                    return
                unique_id, action, reply = quick
                self._current = unique_id
                origin = self._origin or self._new_origin()
                seq = self._seq
                self._seq = seq + 2
                self._reply = reply
                now = time_ns()  # received, and answered in the same call
                self.sink.submit_exchange(
                    origin, seq, unique_id, action, data, now, 3, reply, now, self._deliver
                )
        elif kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION:
            self._fragment(frame)
        else:
            self._control(transport, frame, kind)

    def _fragment(self, frame: WSFrame) -> None:
        self._fragments += frame.get_payload_as_bytes()
        if len(self._fragments) > self.codec.max_frame_bytes:
            self._fragments.clear()
            self.close(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        elif frame.fin:
            data = bytes(self._fragments)
            self._fragments.clear()
            self._enqueue("frame", data)

    def _control(self, transport: WSTransport, frame: WSFrame, kind: WSMsgType) -> None:
        if kind == WSMsgType.PONG:
            self._ping_sent = 0.0
        elif kind == WSMsgType.PING:
            if self._pings is None:
                self._pings = PingBudget()
            if self._pings.allow():
                transport.send(WSMsgType.PONG, frame.get_payload_as_bytes())
            else:  # D8: a ping flood is closed, not answered at any rate
                self.close_for_abuse("too many pings")
        elif kind == WSMsgType.BINARY:
            self.close(WSCloseCode.UNSUPPORTED_DATA, "OCPP-J uses text frames")
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        # None when the peer vanished without a close frame.
        received = getattr(transport.close_handshake, "recv", None)
        reason = f"close {received.code.value}" if received is not None else "connection lost"
        self._enqueue("disconnected", reason.encode())
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(ConnectionError("station disconnected"))
        self._on_closed(self)

    # -- one frame at a time, in order ----------------------------------------------------
    def _enqueue(self, kind: str, data: bytes) -> None:
        arrival = self._arrivals
        self._arrivals += 1
        if not self._busy:
            self._dispatch(kind, data, arrival)
            return
        if self._backlog is None:
            self._backlog = deque()
            if self._flooding_since and time.monotonic() - self._calm_from > CALM_S:
                self._flooding_since = 0.0  # it waited for its answers for a while: over
        self._backlog.append((kind, data, arrival))
        if len(self._backlog) >= FLOOD_QUEUE and not self._flooding_since:
            self._flooding_since = time.monotonic()
        if len(self._backlog) >= INBOUND_QUEUE and not self._paused and self._transport:
            self._paused = True
            self._transport.underlying_transport.pause_reading()

    def _next(self, _: int = 0) -> None:
        """The previous item is done (stored, and answered if it was a CALL): start the next."""
        self._busy = False
        self._worker = None
        if not self._backlog:
            if self._flooding_since:
                self._calm_from = time.monotonic()
            self._current = self._recent = None
            self._backlog = None  # an idle session keeps no deque (they are 600+ bytes)
            return
        if self._current is not None:
            if self._recent is None:
                self._recent = {}
            self._recent[self._current] = self._arrivals
            self._current = None
        kind, data, arrival = self._backlog.popleft()
        if self._paused and len(self._backlog) < INBOUND_QUEUE // 2 and self._transport:
            self._paused = False
            self._transport.underlying_transport.resume_reading()
        if self._flooding_since and kind == "frame":
            # D7: a station that does not wait for its answers gets one frame per FLOOD_STEP_S
            # until it is closed, so that it cannot take the others' share of the loop.
            self._busy = True
            loop = asyncio.get_running_loop()
            loop.call_later(FLOOD_STEP_S, self._dispatch, kind, data, arrival)
            return
        self._dispatch(kind, data, arrival)

    def _dispatch(self, kind: str, data: bytes, arrival: int) -> None:
        self._busy = True
        self._arrival = arrival
        if kind == "disconnected":
            event = self._event("disconnected", "in", 0, None, None, "", data.decode())
            self.sink.submit((event,), self._finished)
        elif not self._fast(data):
            self._worker = asyncio.get_running_loop().create_task(self._slow(data))

    def _in_flight(self, unique_id: str) -> bool:
        """M24: did this CALL arrive before the answer to an earlier CALL with its id?"""
        return self._recent is not None and self._recent.get(unique_id, -1) > self._arrival

    def _finished(self, _: int) -> None:
        self._busy = False
        self._done = True
        if self._closed is not None:
            self._closed.set()

    def _fast(self, data: bytes) -> bool:
        """Answer a valid CALL without a task when its handler needs no I/O; False: not taken,
        nothing done (the slow path handles the frame)."""
        if self._recent is None and not self._boot_refused:
            # As in ``on_ws_frame``, for a frame that waited behind another.
            quick = self.codec.acknowledge(
                data, ACKNOWLEDGED[self.context.ocpp_version], CHECKED_ACTIONS
            )
            if quick is not None:
                unique_id, action, reply = quick
                self._current = unique_id
                self._submit_answer(data, time.time_ns(), unique_id, action, (reply, 3))
                return True
        return self._decoded(data)

    def _decoded(self, data: bytes) -> bool:
        """``_fast`` for a frame ``Codec.acknowledge`` did not take."""
        try:
            frame = self.codec.decode(data)  # a decoded frame is valid UTF-8
        except OcppError:
            return False
        if type(frame) is not Call or frame.message_type_id != 2:
            return False
        unique_id = frame.unique_id  # each read of a Call field makes a new str: read once
        if self._recent is not None and self._in_flight(unique_id):
            return False  # M24, answered on the slow path
        self._current = unique_id
        received_at_ns = time.time_ns()
        action = frame.action
        if action in CHECKED_ACTIONS and may_hold_negative(data):
            self._flag = meter_flag(action, frame.payload)
        outcome = self._outcome(frame, unique_id, action)
        if isinstance(outcome, tuple):
            self._submit_answer(data, received_at_ns, unique_id, action, outcome)
        else:
            self._worker = asyncio.get_running_loop().create_task(
                self._answer_later(data, received_at_ns, unique_id, action, outcome)
            )
        return True

    def _submit_answer(
        self,
        data: bytes,
        received_at_ns: int,
        unique_id: str,
        action: str,
        outcome: tuple[bytes, int],
    ) -> None:
        """Store the CALL and its answer as one message; the answer leaves on the PubAck."""
        reply, message_type = outcome
        flag, self._flag = self._flag, None
        if self._transport is None or self._transport.is_disconnected:
            received = self._event(
                "frame", "in", 2, unique_id, action, data.decode(), flag, received_at_ns
            )
            self.sink.submit((received,), self._next)
            return
        origin = self._origin or self._new_origin()
        seq = self._seq
        self._seq = seq + 2
        self._reply = reply
        if flag is not None:  # rare: the events as objects, the CALL's with its flag
            call, answer = origin.exchange(
                seq,
                unique_id,
                action,
                data.decode(),
                received_at_ns,
                message_type,
                reply.decode(),
                time.time_ns(),
            )
            self.sink.submit((replace(call, reason=flag), answer), self._deliver)
            return
        self.sink.submit_exchange(
            origin,
            seq,
            unique_id,
            action,
            data,
            received_at_ns,
            message_type,
            reply,
            time.time_ns(),
            self._deliver,
        )

    def _new_origin(self) -> Origin:
        """What this session's events share, made at its first answered CALL."""
        self._origin = Origin(
            self.config.node_id, self.session_id, self.station_id, self.codec.version
        )
        return self._origin

    def _deliver(self, _: int) -> None:
        """PubAck of a CALL and its answer: the answer (``_reply``) may leave now (write-ahead)."""
        reply, self._reply = self._reply, None
        transport = self._transport
        if transport is not None and not transport.is_disconnected and reply is not None:
            transport.send(TEXT, reply)
            if self._struck_out:
                self._after_reply()
        if self._backlog is None and not self._flooding_since:  # ``_next`` with nothing waiting
            self._busy = False
            self._worker = None
            self._current = self._recent = None
            return
        self._next()

    def _strike(self) -> None:
        """A CALLERROR the peer caused (malformed frame, unknown action, schema violation, M24;
        not our InternalError): too many in a short window close the connection with 1008
        (reliability.md §5.6) after that reply."""
        if self._strikes is None:
            self._strikes = StrikeBudget()
        if self._strikes.strike():
            self._struck_out = True

    def _after_reply(self) -> None:
        if self._struck_out:
            log.warning("station %s: too many invalid messages; closing", self.station_id)
            self.close_for_abuse("too many invalid messages")

    async def _answer_later(
        self,
        data: bytes,
        received_at_ns: int,
        unique_id: str,
        action: str,
        outcome: Awaitable[tuple[bytes, int]],
    ) -> None:
        try:
            self._submit_answer(data, received_at_ns, unique_id, action, await outcome)
        except Exception:
            self._flag = None
            log.exception("session %s of %s failed", self.session_id, self.station_id)
            self.close(WSCloseCode.INTERNAL_ERROR, "internal error")
            self._next()

    async def _slow(self, data: bytes) -> None:
        try:
            await self._frame(data)
        except Exception:
            log.exception("session %s of %s failed", self.session_id, self.station_id)
            self.close(WSCloseCode.INTERNAL_ERROR, "internal error")
        self._next()

    def keepalive(
        self,
        now: float,
        interval_s: float,
        timeout_s: float,
        silent_s: float = 0.0,
        flood_s: float = 0.0,
    ) -> None:
        """Called by the gateway's sweeper (one timer for all sessions, not a task each): ping
        a station silent for ``interval_s``; drop one that has not answered within
        ``timeout_s`` (a half-open TCP connection would otherwise hold its identity). Close a
        connection that has sent no OCPP message within ``silent_s`` of opening (D2: an
        upgraded socket that never boots only holds resources; 0: never), and one whose frames
        kept waiting behind each other for ``flood_s`` (D7: it sends CALLs without waiting for
        answers; the read pause bounds its memory, this frees its share of the loop)."""
        transport = self._transport
        if transport is None or transport.is_disconnected:
            return
        if silent_s and not self._arrivals and now - self._opened_at > silent_s:
            log.info("station %s sent nothing in %.0f s; closing", self.station_id, silent_s)
            self.close(WSCloseCode.POLICY_VIOLATION, "no OCPP message after connecting")
            return
        if flood_s and self._flooding_since and now - self._flooding_since > flood_s:
            if self._backlog is not None or now - self._calm_from <= CALM_S:
                log.warning("station %s floods CALLs without waiting; closing", self.station_id)
                self.close_for_abuse("CALLs sent without waiting for answers")
                return
            self._flooding_since = 0.0  # calm again, nothing queued since
        if self._ping_sent:
            if now - self._ping_sent > timeout_s:
                log.info("station %s did not answer a ping; disconnecting", self.station_id)
                transport.disconnect()
        elif now - self._last_seen > interval_s:
            self._ping_sent = now
            transport.send_ping()

    def close_for_abuse(self, reason: str) -> None:
        """Close with 1008 and tell the gateway (``SessionConfig.on_abuse``), which then refuses
        this identity's and address's reconnects for a while instead of serving the same flood."""
        transport = self._transport
        notify = self.config.on_abuse
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return  # once per connection, even if more frames of the flood were read already
        if notify is not None:
            peer = transport.underlying_transport.get_extra_info("peername")
            notify(self.station_id, str(peer[0]) if peer else "", reason)
        self.close(WSCloseCode.POLICY_VIOLATION, reason)

    def close(self, code: WSCloseCode = WSCloseCode.OK, reason: str = "") -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.send_close(code, reason.encode())
            self._transport.disconnect()

    def _event(
        self,
        kind: Kind,
        direction: Direction,
        message_type: int,
        unique_id: str | None,
        action: str | None,
        raw: str,
        reason: str | None = None,
        at_ns: int | None = None,
    ) -> FrameEvent:
        seq = self._seq
        self._seq = seq + 1
        return FrameEvent(
            event_id=f"{self.config.node_id}-{self.session_id}-{seq}",
            kind=kind,
            station_id=self.station_id,
            ocpp_version=self.codec.version,
            direction=direction,
            message_type=message_type,
            unique_id=unique_id,
            action=action,
            raw=raw,
            received_at_ns=time.time_ns() if at_ns is None else at_ns,
            node_id=self.config.node_id,
            session_id=self.session_id,
            seq=seq,
            reason=reason,
        )

    async def _record(
        self,
        kind: Kind,
        direction: Direction,
        message_type: int,
        unique_id: str | None,
        action: str | None,
        raw: str,
        reason: str | None = None,
    ) -> None:
        await self.sink.publish(
            self._event(kind, direction, message_type, unique_id, action, raw, reason)
        )

    async def _send(
        self,
        data: bytes,
        message_type: int,
        unique_id: str,
        action: str | None,
        received: FrameEvent | None = None,
    ) -> None:
        """Store the frame we are about to send, then send it (write-ahead for both directions).

        ``received``: the station frame this answers, not stored yet. It is stored together with
        the answer, as one stream message, so an answered CALL costs one JetStream write; the
        answer leaves only after that write is acknowledged. The out-event's time is when the
        answer was made, just before it is stored and sent.
        """
        if self._transport is None or self._transport.is_disconnected:
            if received is not None:
                await self.sink.publish(received)
            return
        sent = self._event("frame", "out", message_type, unique_id, action, data.decode())
        if received is None:
            await self.sink.publish(sent)
        else:
            await self.sink.publish(received, sent)
        if not self._transport.is_disconnected:
            self._transport.send(WSMsgType.TEXT, data)
            self._after_reply()

    async def _frame(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            await self._record(
                "frame", "in", 0, None, None, data.decode(errors="replace"), "invalid UTF-8"
            )
            self.close(WSCloseCode.INVALID_TEXT, "invalid UTF-8")  # RFC 6455 §8.1
            return
        try:
            frame = self.codec.decode(data)
        except OcppError as err:
            await self._refused(text, err)
            return
        if isinstance(frame, Call):
            received = self._event(
                "frame", "in", frame.message_type_id, frame.unique_id, frame.action, text
            )
            if frame.message_type_id == 2 and self._in_flight(frame.unique_id):
                await self._in_progress(frame, received)
            elif frame.message_type_id == 2:
                self._current = frame.unique_id
                await self._answer(frame, received)
            else:
                await self.sink.publish(received)
        elif isinstance(frame, CallResult | CallError):
            action = (
                self._pending[1] if self._pending and self._pending[0] == frame.unique_id else None
            )
            await self._record("frame", "in", frame.message_type_id, frame.unique_id, action, text)
            await self._resolve(frame)
        else:
            assert isinstance(frame, Ignored)
            reason = f"message type {frame.message_type_id} ignored"
            await self._record(
                "frame", "in", frame.message_type_id, frame.unique_id, None, text, reason
            )

    async def _in_progress(self, call: Call, received: FrameEvent) -> None:
        """M24: a CALL that arrived while a CALL with the same id was in progress is refused
        (1.6 GenericError, 2.x RpcFrameworkError; reliability.md §5.3), not run twice."""
        code = "GenericError" if self.codec.version == "1.6" else "RpcFrameworkError"
        text = f"a CALL with id {call.unique_id} is already in progress"
        self._strike()
        reply = self.codec.encode_call_error(call.unique_id, self.codec.spell(code), text)
        await self._send(reply, 4, call.unique_id, call.action, received)

    async def _refused(self, text: str, err: OcppError) -> None:
        """The one place that turns a refused frame into its CALLERROR (or into silence for
        responses and SENDs, which are never answered)."""
        message_type = err.message_type_id or 0
        received = self._event(
            "frame", "in", message_type, err.unique_id, None, text, err.description
        )
        # CALLs and unreadable frames are answered; so is an unknown message type on 2.0.1
        # (Part 4 §4.4, MessageTypeNotSupported). Responses and 2.1 SENDs never are.
        if message_type in (0, 2) or isinstance(err, MessageTypeError):
            self._strike()
            reply = self.codec.encode_call_error(err.unique_id, err.code, err.description)
            await self._send(reply, 4, err.unique_id, None, received)
            return
        await self.sink.publish(received)
        if message_type in (3, 4, 5) and self._pending and self._pending[0] == err.unique_id:
            self._pending[2].set_exception(err)
            if message_type == 3:
                await self._result_error(err)

    async def _answer(self, call: Call, received: FrameEvent) -> None:
        outcome = self._outcome(call, call.unique_id, call.action)
        if not isinstance(outcome, tuple):
            outcome = await outcome
        reply, message_type = outcome
        flag, self._flag = self._flag, None
        if flag is not None:
            received = replace(received, reason=flag)
        await self._send(reply, message_type, call.unique_id, call.action, received)

    def _outcome(
        self, call: Call, unique_id: str, action: str
    ) -> tuple[bytes, int] | Awaitable[tuple[bytes, int]]:
        """The answer to a valid CALL and its message type (3, or 4 for a CALLERROR); an
        awaitable when the handler needs I/O. ``unique_id`` and ``action`` are the call's."""
        if self._answered is not None:
            cached = self._answered.get(unique_id)
            if cached is not None and cached[0] == action:
                # 2.x: "a retried message MAY reuse the message id" (2.0.1 Ed3 errata §4.6):
                # the same answer again, without running the handler twice.
                return cached[1], 3
        if self._boot_refused and action not in BOOT_EXEMPT:
            code, text = self.codec.spell("SecurityError"), "BootNotification not accepted"
            return self.codec.encode_call_error(unique_id, code, text), 4
        route = (self.codec.version, action)
        handler = ROUTES.get(route)
        if handler is None or route in SEND_ONLY:
            code, text = self.codec.spell("NotSupported"), f"{action} is not answered"
            self._strike()
            return self.codec.encode_call_error(unique_id, code, text), 4
        try:
            response = handler(self.context, call)
        except Exception as exc:  # noqa: BLE001 (logged there) a handler bug costs one CALLERROR
            return self._handler_failed(call, exc), 4
        if isinstance(response, dict):
            return self._result(unique_id, action, response)
        if isinstance(response, Flagged):
            return self._flagged(unique_id, action, response)
        return self._result_later(call, response)

    async def _result_later(
        self, call: Call, pending: Awaitable[dict[str, Any] | Flagged]
    ) -> tuple[bytes, int]:
        try:
            response = await pending
        except Exception as exc:  # noqa: BLE001 (logged there)
            return self._handler_failed(call, exc), 4
        if isinstance(response, Flagged):
            return self._flagged(call.unique_id, call.action, response)
        return self._result(call.unique_id, call.action, response)

    def _flagged(self, unique_id: str, action: str, flagged: Flagged) -> tuple[bytes, int]:
        """A handler's answer with a flag (M31): the flag goes into the CALL's stored event,
        after the payload's own flag if it has one (M30: a negative ``meterStop``)."""
        self._flag = flagged.flag if self._flag is None else f"{self._flag}; {flagged.flag}"
        return self._result(unique_id, action, flagged.payload)

    def _result(self, unique_id: str, action: str, response: dict[str, Any]) -> tuple[bytes, int]:
        try:
            reply = self.codec.encode_call_result(action, unique_id, response)
        except Exception as exc:  # noqa: BLE001 (logged there) our answer does not conform
            return self._failed_answer(unique_id, action, exc), 4
        if action == "BootNotification":
            self._boot_refused = _refuses_boot(self.codec.version, response.get("status"))
        if self.codec.version != "1.6":  # 1.6 ids are per connection: a repeat is new (M25)
            if self._answered is None:
                self._answered = OrderedDict()
            self._answered[unique_id] = (action, reply)
            if len(self._answered) > ANSWER_CACHE:
                self._answered.popitem(last=False)
        return reply, 3

    def _handler_failed(self, call: Call, exc: Exception) -> bytes:
        return self._failed_answer(call.unique_id, call.action, exc)

    def _failed_answer(self, unique_id: str, action: str, exc: Exception) -> bytes:
        log.error("handler %s/%s failed", self.codec.version, action, exc_info=exc)
        code = self.codec.spell("InternalError")
        return self.codec.encode_call_error(unique_id, code, type(exc).__name__)

    # -- CSMS-initiated calls -----------------------------------------------------------
    async def call(
        self, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send our CALL and return the station's validated CALLRESULT payload. One outstanding
        CALL per station (others wait here); station CALLs keep being answered meanwhile.

        Raises:
            OcppError: the payload is invalid (nothing is sent) or the answer does not conform.
            CallErrorReceivedError: the station answered with a CALLERROR.
            TimeoutError, ConnectionError.
        """
        if self._call_lock is None:
            self._call_lock = asyncio.Lock()
        async with self._call_lock:
            unique_id = uuid.uuid4().hex
            data = self.codec.encode_call(unique_id, action, payload)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending = (unique_id, action, future)
            try:
                await self._send(data, 2, unique_id, action)
                return await asyncio.wait_for(future, timeout_s or self.config.call_timeout_s)
            finally:
                self._pending = None

    async def _resolve(self, frame: CallResult | CallError) -> None:
        pending = self._pending
        if pending is None or pending[0] != frame.unique_id or pending[2].done():
            return  # unknown or late answer: ignored (reliability.md §1.5)
        _, action, future = pending
        if isinstance(frame, CallError):
            future.set_exception(CallErrorReceivedError(frame.code, frame.description))
            return
        try:
            self.codec.check_response(action, frame)
        except OcppError as err:
            future.set_exception(err)
            await self._result_error(err)
            return
        future.set_result(frame.payload)

    async def _result_error(self, err: OcppError) -> None:
        """2.1 FR.06: a CALLRESULT we cannot accept is answered with CALLRESULTERROR."""
        if self.codec.version == "2.1":
            reply = self.codec.encode_call_result_error(err.unique_id, err.code, err.description)
            await self._send(reply, 5, err.unique_id, None)

    async def stop(self) -> None:
        """Close with 1001 and wait (up to 5 s) until the disconnected event is stored."""
        self.close(WSCloseCode.GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5.0)


def _refuses_boot(version: str, status: object) -> bool:
    """M28: 1.6 recommends SecurityError for any other CALL until a boot is Accepted (Pending
    included, OCPP-J 1.6 §3.8); 2.x requires it only after a Rejected boot (B02/B03.FR.04, as
    narrowed by the 2.0.1 Ed3 errata)."""
    return status != "Accepted" if version == "1.6" else status == "Rejected"


class CallErrorReceivedError(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
