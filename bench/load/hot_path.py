"""The gateway's per-call path without I/O: a station session answering 1.6 MeterValues.

    python -m bench.load.hot_path [--calls 200000] [--repeat 5]

What it times, per call: ``StationSession.on_ws_frame`` (decode and validate in Rust, the route,
the handler, the answer's encoding, the stream message built in Rust and handed to the event
writer) and the PubAck's way back (``EventWriter._acked_many``, the session's ``_deliver`` sending
the answer). The picows transport and the NATS connection are stand-ins that only count, so what is
left is the Python (and the Rust it calls) that runs per answered CALL: the part of the gateway's
cost that our code decides (docs/adr/0007-the-echo-ceiling-budget.md). Pinned to CPU 1; the fastest
of ``--repeat`` runs is the reading (the others are the same work plus the machine's noise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from picows import WSMsgType

from csms.domain.tokens import TokenPolicy
from csms.gateway.session import SessionConfig, StationSession
from csms.handlers.context import HandlerContext
from csms.protocol import codec_for
from streams.event_writer import EventWriter

FRAME = Path(__file__).parents[1] / "frames" / "v16_meter_values_10.json"


class _Ids:
    async def allocate(self, key: str, station_id: str) -> int:
        return 1

    async def started_by(self, transaction_id: int) -> str | None:
        return None


class _Transport:
    """picows's WSTransport, as far as the session's fast path uses it."""

    is_disconnected = False

    def __init__(self) -> None:
        self.sent = 0

    def send(self, kind: WSMsgType, data: bytes) -> None:
        self.sent += 1


class _Frame:
    """picows's WSFrame, as far as ``on_ws_frame`` reads it."""

    __slots__ = ("data",)
    msg_type = WSMsgType.TEXT
    fin = True
    rsv1 = rsv2 = rsv3 = False

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_payload_as_bytes(self) -> bytes:
        return self.data


class _Connection:
    """The event writer's NATS connection: keeps the last writes, sends nothing."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)
        if len(self.out) > 256:
            self.out.clear()


async def one_run(calls: int) -> float:
    """Seconds per call over ``calls`` MeterValues of distinct message ids."""
    raw = FRAME.read_bytes().strip()
    old_id = json.dumps(json.loads(raw)[1]).encode()
    frames = [_Frame(raw.replace(old_id, b'"m%d"' % i, 1)) for i in range(calls)]
    writer = EventWriter("nats://127.0.0.1:1")
    writer._conn = _Connection()  # type: ignore[assignment]
    context = HandlerContext("CP1", "1.6", _Ids(), TokenPolicy())
    session = StationSession(
        "CP1", codec_for("1.6"), context, writer, SessionConfig("node1"), lambda _: None
    )
    transport = _Transport()
    session._transport = transport  # type: ignore[assignment]
    wire: Any = transport
    acked = writer._acked_many
    start = time.perf_counter()
    for seq, frame in enumerate(frames, 1):
        session.on_ws_frame(wire, frame)  # type: ignore[arg-type]
        acked([(next(reversed(writer._entries)), seq)])
    elapsed = time.perf_counter() - start
    if transport.sent != calls:
        raise RuntimeError(f"{transport.sent} answers for {calls} calls")
    return elapsed / calls


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.hot_path")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {1})
    runs = [asyncio.run(one_run(args.calls)) * 1e6 for _ in range(args.repeat)]
    print(
        f"session path without I/O, 1.6 MeterValues: {min(runs):.2f} µs per call "
        f"(fastest of {args.repeat}; all: {', '.join(f'{r:.2f}' for r in runs)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
