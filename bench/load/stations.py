"""One simulated OCPP 1.6 station (a picows client listener) and the state its run shares.

A station has at most one CALL outstanding. Frames are built from the files in ``bench/frames``
by splicing a fresh unique id (``<station>-<seq>``) into the bytes; answers are matched by the
cheap check that they start with ``[3,"<id>"`` (a CALLERROR ``[4,"<id>"`` is counted as an error)
without parsing JSON, so the simulator stays far cheaper per frame than any server under test.
"""

from __future__ import annotations

import asyncio
import json
import random
from array import array
from collections import Counter
from pathlib import Path
from time import perf_counter_ns

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.load.model import Latency

FRAMES = Path(__file__).resolve().parents[1] / "frames"
MAX_US = 2**32 - 1
TEXT = WSMsgType.TEXT
NOTHING = b"\x00"
"""No answer awaited (no frame starts with a NUL byte)."""


def call_suffix(name: str) -> bytes:
    """The bytes of frame ``name`` after its unique id: ``","Action",{...}]``."""
    data = (FRAMES / f"{name}.json").read_bytes().strip()
    unique_id = json.loads(data)[1]
    head = b'[2,"' + unique_id.encode() + b'"'
    if not data.startswith(head):
        raise ValueError(f"{name}: expected a compact CALL starting with {head!r}")
    return data[len(head) - 1 :]


class Shared:
    """What every station of one simulator run reads and updates (single-threaded)."""

    def __init__(self, rate_per_station: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.interval = 1.0 / rate_per_station if rate_per_station else None
        self.boot = call_suffix("v16_boot_notification")
        self.meter = call_suffix("v16_meter_values_10")
        self.sending = False
        self.closing = False
        self.recording = False
        self.answered = 0
        self.latencies_us = array("I")
        self.errors: Counter[str] = Counter()

    def latency(self) -> Latency:
        values = sorted(self.latencies_us)
        if not values:
            return Latency()

        def at(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] / 1000

        return Latency(len(values), at(0.5), at(0.9), at(0.99), at(0.999), values[-1] / 1000)


class Station(WSListener):
    """Boots on connect, then sends MeterValues while ``Shared.sending`` (see the module doc)."""

    def __init__(self, index: int, shared: Shared) -> None:
        self.index = index
        self.shared = shared
        self.transport: WSTransport | None = None
        self.seq = 0
        self.answer = NOTHING
        """The CALLRESULT prefix ``[3,"<id>"`` awaited, or NOTHING."""
        self.booting = True
        self.sent_ns = 0
        self.next_at = 0.0
        self.booted: asyncio.Future[bool] = shared.loop.create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._send(self.shared.boot)

    def _send(self, suffix: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected or self.answer is not NOTHING:
            return
        self.seq += 1
        unique_id = b"%d-%d" % (self.index, self.seq)
        self.answer = b'[3,"' + unique_id + b'"'
        self.sent_ns = perf_counter_ns()
        transport.send(TEXT, b'[2,"' + unique_id + suffix)

    def send_meter(self) -> None:
        if self.shared.sending:
            self._send(self.shared.meter)

    def start(self) -> None:
        """Begin sending MeterValues: at once, or at a random phase of the rate interval."""
        interval = self.shared.interval
        if interval is None:
            self.send_meter()
            return
        self.next_at = self.shared.loop.time() + random.random() * interval
        self.shared.loop.call_at(self.next_at, self.send_meter)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = perf_counter_ns()
        if frame.msg_type is not TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
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
        if self.booting:
            self.booting = False
            self.booted.set_result(accepted)
            return
        shared = self.shared
        if not accepted:
            shared.errors["callerror"] += 1
        elif shared.recording:
            shared.answered += 1
            shared.latencies_us.append(min((now - self.sent_ns) // 1000, MAX_US))
        self._next()

    def _next(self) -> None:
        shared = self.shared
        if not shared.sending:
            return
        if shared.interval is None:
            self._send(shared.meter)
            return
        now = shared.loop.time()
        self.next_at = max(self.next_at + shared.interval, now)
        if self.next_at <= now:
            self._send(shared.meter)
        else:
            shared.loop.call_at(self.next_at, self.send_meter)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.shared.closing:
            self.shared.errors["disconnected"] += 1
        if self.booting:
            self.booting = False
            self.booted.set_result(False)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close()
            self.transport.disconnect()
