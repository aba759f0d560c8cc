"""nats-server's CPU per stored exchange message, by how the message is published.

    python -m bench.load.nats_cost [--variants own-reply,reused-reply,window10,no-msg-id]
        [--repeat 3] [--seconds 8] [--window 200] [--stations 200] [--json OUT]

Why: in the load bench, csms's nats-server takes about 40 % of the core it shares with the
gateway. This isolates it. A fresh nats-server (JetStream, file storage, the product's stream
settings and Go runtime settings) is pinned to CPU 0; this process, pinned to CPU 1, publishes
the very messages the gateway writes (``csms._core.exchange_message``: a 1.6 MeterValues of ten
sampled values and its answer, one subject per station) with ``--window`` messages in flight,
a new one per PubAck, and reads nats-server's CPU time (user + system, /proc) over the window.

Variants (same run, alternating, ``--repeat`` times each; medians reported):
- ``own-reply``: a reply subject of its own per message (as csms published until session 6),
  ``Nats-Msg-Id``, the 120 s duplicate window. The baseline.
- ``reused-reply``: reply subjects drawn from a pool of 1,024, so nats-server's subject caches
  hit (as the gateway publishes now: ``EventWriter._next_token``).
- ``window10``: a 10 s duplicate window instead of 120 s (a smaller dedupe table).
- ``no-msg-id``: no ``Nats-Msg-Id`` header: what deduplication costs. Not an option for the
  product: retries would store duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nats

from bench.load.environment import environment, load_average
from bench.load.report import command, utc_now
from csms.protocol import codec_for
from streams import nats_wire
from streams.embedded import free_port, nats_environment, nats_server_binary
from streams.provision import StreamSettings, ensure_stream
from streams.subjects import subject

FRAME = Path(__file__).parents[1] / "frames" / "v16_meter_values_10.json"
PREFIX = "_INBOX.natscostnatscostnatsco"
POOL = 1024
VARIANTS: dict[str, tuple[bool, bool, float]] = {
    # name: (recycled reply subjects, Nats-Msg-Id, duplicate window s)
    "own-reply": (False, True, 120.0),
    "reused-reply": (True, True, 120.0),
    "window10": (False, True, 10.0),
    "no-msg-id": (False, False, 120.0),
}
SERVER_CPU = 0
PUBLISHER_CPU = 1


@dataclass
class Result:
    variant: str
    rates: list[float] = field(default_factory=list)
    us_per_msg: list[float] = field(default_factory=list)
    core_share: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def without_msg_id(message: bytes) -> bytes:
    """The same HPUB with an empty header block (``NATS/1.0`` only)."""
    line, _, rest = message.partition(b"\r\n")
    body = rest[rest.index(b"\r\n\r\n") + 4 :]
    verb, subj, reply, _, _ = line.split(b" ")
    empty = b"NATS/1.0\r\n\r\n"
    size = len(empty) + len(body) - 2
    return b"%s %s %s %d %d\r\n%s%s" % (verb, subj, reply, len(empty), size, empty, body)


class Publisher(asyncio.Protocol):
    """Keeps ``window`` messages in flight, one new message per PubAck."""

    def __init__(self, recycled: bool, msg_id: bool, window: int, stations: int) -> None:
        self.recycled, self.msg_id = recycled, msg_id
        self.window, self.stations = window, stations
        self.call = FRAME.read_bytes().strip()
        self.answer = codec_for("1.6").encode_call_result("MeterValues", "x", {})
        self.sent = 0
        self.acked = 0
        self.tail = b""
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        connect = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'
        transport.write(connect + f"SUB {PREFIX}.* 1\r\nPING\r\n".encode())  # type: ignore[attr-defined]

    def message(self) -> bytes:
        self.sent += 1
        n = self.sent
        station = f"CP{n % self.stations}"
        token = n % POOL if self.recycled else n
        now = time.time_ns()
        data = nats_wire.exchange_message(
            subject(station), PREFIX, token, "node1", "0123456789ab", station, "1.6",
            f"id{n}", "MeterValues", 2 * n, self.call, now, 3, self.answer, now,
        )  # fmt: skip
        return data if self.msg_id else without_msg_id(data)

    def start(self) -> None:
        assert self.transport is not None
        self.transport.writelines([self.message() for _ in range(self.window)])

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.ready.done():
            if b"PONG" in data:
                self.ready.set_result(None)
            return
        data, pos, count = self.tail + data, 0, 0
        while True:
            pos, acks = nats_wire.scan_acks(data, pos, PREFIX.encode())
            count += len(acks)
            if data.startswith(b"PING\r\n", pos):
                self.transport.write(b"PONG\r\n")
                pos += 6
            elif data.startswith(b"PONG\r\n", pos):
                pos += 6
            elif not acks:
                break
        self.tail = data[pos:]
        if len(self.tail) > 65536:
            raise RuntimeError(f"not a PubAck: {self.tail[:200]!r}")
        self.acked += count
        if count:
            self.transport.writelines([self.message() for _ in range(count)])


async def one_run(variant: str, args: argparse.Namespace, scratch: Path) -> tuple[float, float]:
    recycled, msg_id, window_s = VARIANTS[variant]
    store = scratch / "store"
    shutil.rmtree(store, ignore_errors=True)
    port = free_port()
    argv = [str(nats_server_binary()), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), *argv],
        env=nats_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # until it listens (nats-py would log each refused attempt)
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
            else:
                probe.close()
                break
        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        await ensure_stream(nc.jetstream(), StreamSettings(duplicate_window_s=window_s))
        await nc.close()
        loop = asyncio.get_running_loop()
        _, pub = await loop.create_connection(
            lambda: Publisher(recycled, msg_id, args.window, args.stations), "127.0.0.1", port
        )
        await asyncio.wait_for(pub.ready, 10)
        pub.start()
        await asyncio.sleep(2.0)  # warm-up: the stream's first blocks, the caches
        acked, cpu, start = pub.acked, cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        n = pub.acked - acked
        used, elapsed = cpu_seconds(server.pid) - cpu, time.monotonic() - start
        if n == 0:
            raise RuntimeError(f"{variant}: no PubAck in {args.seconds} s")
        return n / elapsed, used / n * 1e6
    finally:
        server.terminate()
        server.wait()


async def run(args: argparse.Namespace) -> list[Result]:
    results = {name: Result(name) for name in args.variants}
    scratch = Path(tempfile.mkdtemp(prefix="bench-natscost-"))
    try:
        for i in range(args.repeat):
            for name in args.variants:
                rate, us = await one_run(name, args, scratch)
                r = results[name]
                r.rates.append(rate)
                r.us_per_msg.append(us)
                r.core_share.append(rate * us / 1e6)
                print(
                    f"  {i + 1}/{args.repeat} {name}: {rate:,.0f}/s, {us:.2f} µs", file=sys.stderr
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return list(results.values())


def render(results: list[Result], env: dict[str, str], started: str, cmd: str) -> str:
    base = statistics.median(results[0].us_per_msg)
    lines = [
        f"- **Date**: {started} to {utc_now()}; **command**: `{cmd}`",
        f"- **Machine**: {env['cpu']}, {env['cores']} cores, Linux {env['kernel']}; load average "
        f"{env['load_average_start']} at start, {load_average()} at end",
        f"- **Versions**: nats-server {env['nats-server']} ({env['nats-server Go runtime']}), "
        f"{env['python']}, nats-py {env['nats-py']}, csms._core {env['csms._core']}",
        "",
        f"| variant | stored/s | nats-server µs per message | vs {results[0].variant} "
        "| nats-server share of its core |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in results:
        us = statistics.median(r.us_per_msg)
        lines.append(
            f"| {r.variant} | {statistics.median(r.rates):,.0f} | {us:.2f} "
            f"({min(r.us_per_msg):.2f}-{max(r.us_per_msg):.2f}) | {us / base:.2f}x "
            f"| {statistics.median(r.core_share) * 100:.0f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.nats_cost")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    os.sched_setaffinity(0, {PUBLISHER_CPU})
    started, env = utc_now(), environment(False)
    results = asyncio.run(run(args))
    print(render(results, env, started, command("bench.load.nats_cost", argv)))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
