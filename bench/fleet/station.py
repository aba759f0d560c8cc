"""One simulated charging station: a picows client listener with an outbox and one CALL in flight.

Frames are built by splicing ``[2,"<id>","<Action>",`` before an encoded payload; answers are
matched by the prefix ``[3,"<id>"`` without parsing (only BootNotification, Authorize and 1.6
StartTransaction answers are parsed, for their status or transaction id). CALLs from the CSMS
(``[2,`` frames, rare) are parsed and answered by ``bench.fleet.commands``.

Transaction messages (start, meter values, stop) are never lost: unanswered within the call
timeout, or in flight when the connection drops, they go back to the head of the outbox; generated
while disconnected they wait there (the offline queue, bounded) and are replayed after the next
Accepted boot. Other messages are dropped while offline.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from bench.fleet import commands
from bench.fleet.lean import control
from bench.fleet.payloads import ENCODE, V16, Transaction
from bench.fleet.shared import Shared

TEXT = WSMsgType.TEXT
NOTHING = b"\x00"
"""No answer awaited (no frame starts with a NUL byte)."""

# message tags
BOOT, STATUS, HEARTBEAT, AUTHORIZE, START, METER, CLOCK_METER, STOP = range(8)
TRANSACTIONAL = frozenset({START, METER, CLOCK_METER, STOP})
REBOOT_DELAY_S = 0.5
"""After answering Reset: the answer reaches the CSMS (and queued messages leave) first."""


@dataclass(slots=True)
class Msg:
    tag: int
    action: bytes
    payload: bytes | dict[str, Any]
    tx: Transaction | None = None
    offline: bool = False
    """Generated while disconnected (counted as replayed when sent)."""
    sent: bool = False
    """Sent at least once (a later send is a retry)."""
    burst: int = -1


@dataclass(slots=True)
class Flight:
    msg: Msg
    answer: bytes
    """``[3,"<id>"``: the start of its CALLRESULT."""
    sent_ns: int = field(default_factory=perf_counter_ns)


class SimStation(WSListener):
    def __init__(self, station_id: str, shared: Shared) -> None:
        self.station_id = station_id
        self.shared = shared
        self.dialect = shared.dialect
        self.transport: WSTransport | None = None
        self.accepted = False
        """This connection's BootNotification was Accepted."""
        self.ever_accepted = False
        self.connection = 0
        self.outbox: deque[Msg] = deque()
        self.flight: Flight | None = None
        self.seq = 0
        self.sessions = 0
        self.tx: Transaction | None = None
        self.energy_wh = random.randrange(0, 5_000_000)
        self.heartbeat_s = shared.scenario.heartbeat_interval_s
        self.meter_cache: (
            tuple[tuple[int, Transaction, int | None], bytes, bytes, bytes | None] | None
        ) = None
        self.reboot = False
        """Asked to reset: reconnect at once (no back-off), boot reason RemoteReset."""

    # -- connection ----------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.connection += 1
        if self.connection == 1:
            self.shared.first_connected()
        self.accepted = False
        chosen = transport.response.headers.get("Sec-WebSocket-Protocol", "")
        if chosen != self.dialect.subprotocol:
            self.shared.errors["subprotocol"] += 1
        self._send_boot()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        shared = self.shared
        if not shared.stopping and not self.reboot:
            shared.errors["disconnected"] += 1
        self.accepted = False
        flight, self.flight = self.flight, None
        if flight is not None and flight.msg.tag in TRANSACTIONAL:
            self.outbox.appendleft(flight.msg)
        kept: deque[Msg] = deque()
        for msg in self.outbox:
            if msg.tag in TRANSACTIONAL:
                kept.append(msg)
            elif msg.tag == AUTHORIZE and self.tx is None:
                shared.loop.call_soon(self._start_tx)  # offline: authorized locally
        self.outbox = kept

    @property
    def online(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_disconnected

    def close(self) -> None:
        if self.online:
            assert self.transport is not None
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()

    # -- sending -------------------------------------------------------------------------
    def _send_boot(self) -> None:
        reason = "RemoteReset" if self.reboot else "PowerUp"
        self.reboot = False
        payload = self.dialect.boot(self.station_id, reason)
        self._transmit(Msg(BOOT, b"BootNotification", payload))

    def _transmit(self, msg: Msg) -> None:
        transport = self.transport
        assert transport is not None
        payload = msg.payload
        if not isinstance(payload, bytes):
            tx = msg.tx
            if tx is not None and tx.transaction_id is not None:
                payload = {**payload, "transactionId": tx.transaction_id}
            elif msg.tag == STOP:
                self.shared.errors["stop_without_transaction_id"] += 1
                self._pump()
                return
            payload = ENCODE(payload)
        self.seq += 1
        unique_id = b"%d" % self.seq
        shared = self.shared
        if msg.sent:
            shared.retries += 1
        elif msg.offline:
            shared.replayed += 1
        msg.sent = True
        shared.sent[msg.action] += 1
        self.flight = Flight(msg, b'[3,"' + unique_id + b'"')
        transport.send(TEXT, b'[2,"%s","%s",%s]' % (unique_id, msg.action, payload))

    def _pump(self) -> None:
        if self.flight is None and self.accepted and self.outbox and self.online:
            self._transmit(self.outbox.popleft())

    def enqueue(self, msg: Msg) -> None:
        shared = self.shared
        if shared.stopping:
            return
        if not self.accepted:
            if msg.tag not in TRANSACTIONAL:
                shared.errors["dropped_offline"] += 1
                return
            if (
                msg.tag in (METER, CLOCK_METER)
                and len(self.outbox) >= shared.scenario.offline_queue
            ):
                shared.errors["dropped_offline"] += 1
                return
            msg.offline = True
        self.outbox.append(msg)
        self._pump()

    def check_timeout(self, now_ns: int, timeout_ns: int) -> None:
        """Called every second by the fleet: give up a CALL unanswered for ``timeout_ns``."""
        flight = self.flight
        if flight is None or now_ns - flight.sent_ns < timeout_ns:
            return
        self.flight = None
        msg = flight.msg
        self.shared.timeouts[msg.action] += 1
        if msg.tag == BOOT:
            self._send_boot()
            return
        if msg.tag in TRANSACTIONAL:
            self.outbox.appendleft(msg)
        self._pump()

    # -- receiving -----------------------------------------------------------------------
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            control(transport, frame)
            return
        data = frame.get_payload_as_bytes()
        flight = self.flight
        if flight is not None and data.startswith(flight.answer):
            self._answered(flight, data, True)
        elif data.startswith(b"[2,"):
            self._command(data)
        elif flight is not None and self._is_error_for(flight, data):
            self._answered(flight, data, False)
        else:
            self._odd(data)

    @staticmethod
    def _is_error_for(flight: Flight, data: bytes) -> bool:
        tail = flight.answer[2:]
        return data.startswith(b"[4" + tail) or data.startswith(b"[5" + tail)

    def _odd(self, data: bytes) -> None:
        """Not the awaited answer by its prefix: spaced JSON, a late answer or garbage."""
        flight = self.flight
        try:
            frame = json.loads(data)
            same = flight is not None and frame[1] == flight.answer[4:-1].decode()
        except (ValueError, IndexError, TypeError, KeyError):
            same = False
            frame = None
        if same and flight is not None and frame is not None and frame[0] in (3, 4, 5):
            self._answered(flight, ENCODE(frame), frame[0] == 3)
        else:
            self.shared.errors["late_or_unknown_answer"] += 1

    def _answered(self, flight: Flight, data: bytes, ok: bool) -> None:
        now = perf_counter_ns()
        self.flight = None
        msg = flight.msg
        shared = self.shared
        if not ok:
            shared.callerrors[msg.action] += 1
            if msg.tag == BOOT:
                shared.loop.call_later(self._backoff_s(), self._reboot_if_connected)
            elif msg.tag == AUTHORIZE and self.tx is None:
                self._schedule_plug_in()
            self._pump()
            return
        shared.answered[msg.action] += 1
        if shared.recording:
            shared.window_answered += 1
            shared.latencies_us.append((now - flight.sent_ns) // 1000)
        if msg.burst >= 0:
            shared.burst_answered(msg.burst)
        tag = msg.tag
        if tag == BOOT:
            self._boot_answer(data)
        elif tag == AUTHORIZE:
            self._authorize_answer(data)
        elif tag == START:
            self._start_answer(msg, data)
        elif tag == STOP:
            shared.transactions_completed += 1
            shared.notify()
        elif (
            tag == METER
            and self.tx is not None
            and msg.tx is self.tx
            and shared.scenario.meter_interval_s[1] <= 0
            and not self.outbox
        ):
            self._meter(self.tx, "Sample.Periodic")
        self._pump()

    @staticmethod
    def _payload(data: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(data)[2]
        except (ValueError, IndexError):
            return {}
        return payload if isinstance(payload, dict) else {}

    def _boot_answer(self, data: bytes) -> None:
        payload = self._payload(data)
        status = payload.get("status")
        interval = payload.get("interval")
        if status != "Accepted":
            retry_s = interval if isinstance(interval, int) and interval > 0 else 10
            self.shared.errors[f"boot_{status}"] += 1
            self.shared.loop.call_later(min(retry_s, 60), self._reboot_if_connected)
            return
        if not self.heartbeat_s:
            self.heartbeat_s = interval if isinstance(interval, int) and interval > 0 else 300
        self.accepted = True
        first = not self.ever_accepted
        self.ever_accepted = True
        shared = self.shared
        if first:
            shared.first_accepted(self)
        self.outbox.appendleft(Msg(STATUS, b"StatusNotification", self._status()))
        self._pump()
        connection = self.connection
        shared.loop.call_later(self.heartbeat_s, self._heartbeat, connection)
        if first and shared.scenario.charging and not shared.scenario.boot_only:
            self._first_plug_in()

    def _status(self) -> bytes:
        return self.dialect.status(1, "Occupied" if self.tx is not None else "Available")

    def _reboot_if_connected(self) -> None:
        if self.online and not self.accepted and self.flight is None:
            self._send_boot()

    def _authorize_answer(self, data: bytes) -> None:
        payload = self._payload(data)
        info = payload.get("idTagInfo") or payload.get("idTokenInfo") or {}
        if info.get("status") == "Accepted":
            self._start_tx()
        else:
            self.shared.errors["authorize_refused"] += 1
            self._schedule_plug_in()

    def _start_answer(self, msg: Msg, data: bytes) -> None:
        self.shared.transactions_started += 1
        self.shared.notify()
        if isinstance(self.dialect, V16) and msg.tx is not None:
            transaction_id = self._payload(data).get("transactionId")
            if isinstance(transaction_id, int):
                msg.tx.transaction_id = transaction_id

    def _command(self, data: bytes) -> None:
        shared = self.shared
        try:
            _, unique_id, action, payload = json.loads(data)
        except (ValueError, TypeError):
            shared.errors["bad_command"] += 1
            return
        answer = commands.answer(self.dialect.version, action, payload)
        transport = self.transport
        if transport is None:
            return
        if answer is None:
            reply: list[Any] = [4, unique_id, "NotImplemented", f"{action} not simulated", {}]
            transport.send(TEXT, ENCODE(reply))
            return
        transport.send(TEXT, ENCODE([3, unique_id, answer]))
        shared.commands[action] += 1
        shared.notify()
        if answer.get("status") == "Accepted":
            shared.loop.call_soon(self._follow_up, action, payload)

    # -- behaviour -------------------------------------------------------------------------
    def _follow_up(self, action: str, payload: dict[str, Any]) -> None:
        """What a charger does after accepting a command."""
        if action == "Reset":
            if self.tx is not None:
                self._stop_tx("HardReset" if isinstance(self.dialect, V16) else "ImmediateReset")
            self.reboot = True
            self.shared.loop.call_later(REBOOT_DELAY_S, self.close)
        elif action in ("RemoteStartTransaction", "RequestStartTransaction") and self.tx is None:
            token = payload.get("idTag") or payload.get("idToken", {}).get("idToken", "REMOTE")
            self._start_tx(token, payload.get("remoteStartId"))
        elif action in ("RemoteStopTransaction", "RequestStopTransaction") and self.tx:
            self._stop_tx("Remote")
        elif action == "TriggerMessage":
            wanted = payload.get("requestedMessage")
            if wanted == "Heartbeat":
                self.enqueue(Msg(HEARTBEAT, b"Heartbeat", b"{}"))
            elif wanted == "StatusNotification":
                self.enqueue(Msg(STATUS, b"StatusNotification", self._status()))
            elif wanted == "MeterValues" and self.tx is not None:
                self._meter(self.tx, "Trigger")

    def _heartbeat(self, connection: int) -> None:
        if self.shared.stopping or connection != self.connection or not self.online:
            return
        self.enqueue(Msg(HEARTBEAT, b"Heartbeat", b"{}"))
        self.shared.loop.call_later(self.heartbeat_s, self._heartbeat, connection)

    def _first_plug_in(self) -> None:
        """At once, or as if the fleet had been running: a station is found charging with the
        probability mean session / (mean session + mean idle), the others plug in later."""
        scenario = self.shared.scenario
        if scenario.start_at_once:
            if scenario.start_spread_s > 0:
                delay = random.uniform(0, scenario.start_spread_s)
                self.shared.loop.call_later(delay, self._plug_in)
            else:
                self._plug_in()
            return
        session_s, idle_s = sum(scenario.session_s) / 2, sum(scenario.idle_s) / 2
        charging = session_s / (session_s + idle_s) if session_s + idle_s > 0 else 1.0
        if random.random() < charging:
            delay = random.uniform(0, scenario.first_sessions_spread_s)
        else:
            delay = random.uniform(0, scenario.idle_s[1])
        self.shared.loop.call_later(delay, self._plug_in)

    def _schedule_plug_in(self, at_once: bool = False) -> None:
        delay = 0.0 if at_once else random.uniform(*self.shared.scenario.idle_s)
        self.shared.loop.call_later(delay, self._plug_in)

    def _plug_in(self) -> None:
        if self.shared.stopping or self.tx is not None:
            return
        token = f"TAG{self.station_id[-12:]}".upper()
        if self.accepted and self.shared.scenario.authorize:
            self.enqueue(Msg(AUTHORIZE, b"Authorize", self.dialect.authorize(token)))
        else:
            self._start_tx(token)

    def _start_tx(self, id_tag: str | None = None, remote_start_id: int | None = None) -> None:
        if self.tx is not None or self.shared.stopping:
            return
        self.sessions += 1
        token = id_tag or f"TAG{self.station_id[-12:]}".upper()
        tx = Transaction(f"{self.station_id[-24:]}-{self.sessions}", token[:20])
        tx.meter_start_wh = self.energy_wh
        tx.remote_start_id = remote_start_id
        self.tx = tx
        dialect = self.dialect
        if isinstance(dialect, V16):
            start = Msg(START, b"StartTransaction", dialect.start_transaction(tx), tx)
        else:
            trigger = "RemoteStart" if remote_start_id is not None else "Authorized"
            payload = dialect.transaction_event(
                tx, "Started", trigger, "Transaction.Begin", offline=not self.accepted
            )
            start = Msg(START, b"TransactionEvent", payload, tx)
        self.enqueue(start)
        self.enqueue(Msg(STATUS, b"StatusNotification", dialect.status(1, "Occupied")))
        scenario = self.shared.scenario
        low, high = scenario.session_s
        if high > 0:
            self.shared.loop.call_later(random.uniform(low, high), self._stop_if, tx)
        if scenario.meter_interval_s[1] <= 0:
            self._meter(tx, "Sample.Periodic")
        else:
            self.shared.loop.call_later(random.uniform(*scenario.meter_interval_s), self._tick, tx)

    def _tick(self, tx: Transaction) -> None:
        if tx is not self.tx or self.shared.stopping:
            return
        self._meter(tx, "Sample.Periodic")
        delay = random.uniform(*self.shared.scenario.meter_interval_s)
        self.shared.loop.call_later(delay, self._tick, tx)

    def _meter(self, tx: Transaction, context: str, burst: int = -1) -> None:
        if context == "Sample.Periodic" and self.shared.scenario.meter_interval_s[1] <= 0:
            self.enqueue(self._cached_meter(tx))
            return
        action, payload = self.dialect.meter_values(tx, context, not self.accepted)
        tag = CLOCK_METER if context == "Sample.Clock" else METER
        self.enqueue(Msg(tag, action, payload, tx, burst=burst))

    def _cached_meter(self, tx: Transaction) -> Msg:
        """As fast as answered: the encoded values are reused within a second (2.x: a fresh
        seqNo spliced in), so the simulator stays cheap per frame."""
        key = (int(time.monotonic()), tx, tx.transaction_id)
        cache = self.meter_cache
        if cache is None or cache[0] != key:
            cache = self.meter_cache = (key, *self.dialect.meter_template(tx))
        _, action, head, tail = cache
        payload = head if tail is None else b"%s%d%s" % (head, tx.next_seq_no(), tail)
        return Msg(METER, action, payload, tx)

    def clock_aligned(self, burst: int) -> bool:
        """Send this boundary's Sample.Clock values if charging (True if sent)."""
        if self.tx is None:
            return False
        self._meter(self.tx, "Sample.Clock", burst)
        return True

    def _stop_if(self, tx: Transaction) -> None:
        if tx is self.tx and not self.shared.stopping:
            self._stop_tx("Local")

    def _stop_tx(self, reason: str) -> None:
        tx = self.tx
        if tx is None:
            return
        self.tx = None
        self.energy_wh = tx.energy_wh()
        dialect = self.dialect
        if isinstance(dialect, V16):
            self.enqueue(Msg(STOP, b"StopTransaction", dialect.stop_transaction(tx, reason), tx))
        else:
            trigger = {"Remote": "RemoteStop", "Local": "StopAuthorized"}.get(
                reason, "ResetCommand"
            )
            payload = dialect.transaction_event(
                tx, "Ended", trigger, "Transaction.End", not self.accepted, reason
            )
            self.enqueue(Msg(STOP, b"TransactionEvent", payload, tx))
        self.enqueue(Msg(STATUS, b"StatusNotification", dialect.status(1, "Available")))
        self._schedule_plug_in()

    def _backoff_s(self) -> float:
        return random.uniform(0.5, 1.0) * self.shared.scenario.backoff_s[0]
