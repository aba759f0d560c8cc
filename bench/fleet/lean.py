"""The lean station of the throughput scenario: one endless transaction, meter values one CALL at a
time as fast as answered (or at a fixed rate), nothing else.

The payloads are the fleet's (``bench.fleet.payloads``: 1.6 MeterValues with ten sampled values,
2.x TransactionEvent Updated with the same values), but the per-frame path is kept minimal so that
the simulator stays far cheaper per frame than any server under test: the encoded meter values
are reused within a second (2.x: a fresh ``seqNo`` spliced in), answers are matched by the prefix
``[3,"<id>"`` without parsing, and only the BootNotification and the 1.6 StartTransaction answers
are decoded. ``SimStation`` (``bench.fleet.station``) is the full-behaviour station.
"""

from __future__ import annotations

import asyncio
import json
import random
from array import array
from collections import Counter
from time import perf_counter_ns

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.fleet.model import Percentiles, percentiles
from bench.fleet.payloads import V16, Transaction, dialect
from bench.fleet.scenario import Scenario

MAX_US = 2**32 - 1
TEXT = WSMsgType.TEXT
NOTHING = b"\x00"
"""No answer awaited (no frame starts with a NUL byte)."""
BOOTING, STARTING, METERING = range(3)


def control(transport: WSTransport, frame: WSFrame) -> None:
    """A non-text frame (every station kind): a CLOSE is answered and the connection ends."""
    if frame.msg_type is WSMsgType.CLOSE:
        transport.send_close(frame.get_close_code())
        transport.disconnect()


class LeanShared:
    """What every lean station of one run reads and updates (single-threaded)."""

    def __init__(
        self,
        scenario: Scenario,
        version: str,
        rate_per_station: float | None,
        transact: bool = True,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.transact = transact
        """Start the transaction after boot (False: idle stations, booted and nothing else)."""
        self.scenario = scenario
        self.dialect = dialect(version)
        self.interval = 1.0 / rate_per_station if rate_per_station else None
        self.sending = False
        self.closing = False
        self.recording = False
        self.second = 0
        """Whole seconds since the start: the encoded meter values are refreshed when it moves."""
        self._tick()
        self.answered = 0
        self.latencies_us: array[int] = array("I")
        self.errors: Counter[str] = Counter()

    def _tick(self) -> None:
        if not self.closing:
            self.second += 1
            self.loop.call_later(1.0, self._tick)

    def latency(self) -> Percentiles:
        return percentiles(list(self.latencies_us))


class LeanStation(WSListener):
    """Boots on connect, starts its transaction, then sends meter values while
    ``LeanShared.sending`` (see the module doc)."""

    def __init__(self, index: int, station_id: str, shared: LeanShared) -> None:
        self.index = index
        self.station_id = station_id
        self.shared = shared
        self.transport: WSTransport | None = None
        self.seq = 0
        self.call_head = b'[2,"%d-' % index
        self.answer_head = b'[3,"%d-' % index
        """Unique ids are ``<index>-<seq>``: these are the frames' starts up to the seq."""
        self.answer = NOTHING
        """The CALLRESULT prefix ``[3,"<id>"`` awaited, or NOTHING."""
        self.metering = False
        self.phase = BOOTING
        self.sent_ns = 0
        self.next_at = 0.0
        self.booted: asyncio.Future[bool] = shared.loop.create_future()
        self.tx = Transaction(f"{station_id[-24:]}-1", f"TAG{index}"[:20])
        self.meter_second = -1
        self.meter_head = self.meter_tail = b""
        """The frame after its unique id, ``","<Action>",{...}]``, reused within
        ``meter_second`` (2.x: head + seqNo + tail)."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._call(b"BootNotification", self.shared.dialect.boot(self.station_id))

    def _call(self, action: bytes, payload: bytes) -> None:
        self._send(b'","%s",%s]' % (action, payload))

    def _send(self, suffix: bytes) -> None:
        """Send ``[2,"<fresh id>`` + ``suffix``, unless a CALL is outstanding."""
        transport = self.transport
        if transport is None or transport.is_disconnected or self.answer is not NOTHING:
            return
        self.seq += 1
        seq = b"%d" % self.seq
        self.answer = self.answer_head + seq + b'"'
        self.sent_ns = perf_counter_ns()
        transport.send(TEXT, self.call_head + seq + suffix)

    def _start_transaction(self) -> None:
        dialect, tx = self.shared.dialect, self.tx
        if isinstance(dialect, V16):
            self._call(b"StartTransaction", dialect.start_transaction(tx))
        else:
            started = dialect.transaction_event(tx, "Started", "Authorized", "Transaction.Begin")
            self._call(b"TransactionEvent", started)

    def send_meter(self) -> None:
        shared = self.shared
        if not shared.sending:
            return
        if self.meter_second != shared.second:
            self._refresh_meter(shared)
        tail = self.meter_tail
        if tail:
            self._send(b"%s%d%s" % (self.meter_head, self.tx.next_seq_no(), tail))
        else:
            self._send(self.meter_head)

    def _refresh_meter(self, shared: LeanShared) -> None:
        """Encode this second's meter values: the frame after the unique id (1.6), or its head
        and tail around the seqNo (2.x)."""
        action, head, tail = shared.dialect.meter_template(self.tx)
        self.meter_second = shared.second
        if tail is None:
            self.meter_head, self.meter_tail = b'","%s",%s]' % (action, head), b""
        else:
            self.meter_head, self.meter_tail = b'","%s",%s' % (action, head), tail + b"]"

    def start(self) -> None:
        """Begin sending meter values: at once, or at a random phase of the rate interval."""
        interval = self.shared.interval
        if interval is None:
            self.send_meter()
            return
        self.next_at = self.shared.loop.time() + random.random() * interval
        self.shared.loop.call_at(self.next_at, self.send_meter)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = perf_counter_ns()
        if frame.msg_type is not TEXT:
            control(transport, frame)
            return
        data = frame.get_payload_as_bytes()
        answer = self.answer
        if data.startswith(answer):
            accepted = True
        elif answer is not NOTHING and data.startswith(b"[4" + answer[2:]):
            accepted = False
        else:
            self.shared.errors["bad_answer"] += 1
            return
        self.answer = NOTHING
        if not self.metering:
            self._setup_answer(data, accepted)
            return
        shared = self.shared
        if not accepted:
            shared.errors["callerror"] += 1
        elif shared.recording:
            shared.answered += 1
            latency_us = (now - self.sent_ns) // 1000
            shared.latencies_us.append(latency_us if latency_us < MAX_US else MAX_US)
        if shared.interval is None:
            self.send_meter()
        else:
            self._paced()

    def _setup_answer(self, data: bytes, accepted: bool) -> None:
        """Answers to BootNotification and to the transaction's start (decoded: rare)."""
        try:
            payload = json.loads(data)[2] if accepted else {}
        except (ValueError, IndexError):
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if self.phase == BOOTING:
            # The echo ceiling answers {} to all but BootNotification: a CALLRESULT is enough.
            if not accepted or payload.get("status", "Accepted") != "Accepted":
                self.shared.errors["boot"] += 1
                self.booted.set_result(False)
                return
            if self.shared.transact:
                self.phase = STARTING
                self._start_transaction()
                return
            accepted = True
        if not accepted:
            self.shared.errors["start"] += 1
        transaction_id = payload.get("transactionId")
        if isinstance(transaction_id, int):
            self.tx.transaction_id = transaction_id
        self.phase = METERING
        self.metering = True
        self.booted.set_result(accepted)

    def _paced(self) -> None:
        """At most one meter value per ``interval``: now if late, else at the next slot."""
        shared = self.shared
        if not shared.sending or shared.interval is None:
            return
        now = shared.loop.time()
        self.next_at = max(self.next_at + shared.interval, now)
        if self.next_at <= now:
            self.send_meter()
        else:
            shared.loop.call_at(self.next_at, self.send_meter)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.shared.closing:
            self.shared.errors["disconnected"] += 1
        if not self.booted.done():
            self.booted.set_result(False)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close()
            self.transport.disconnect()
