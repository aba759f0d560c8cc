"""Station simulator: N picows clients on uvloop (run it pinned to its own core).

    python -m bench.load.sim --url ws://127.0.0.1:PORT/ocpp --stations N
        [--duration S] [--warmup S] [--rate PER_STATION_PER_S] [--watch NAME=PID ...]
    python -m bench.load.sim --url ... --stations N --idle [--warm K]

Throughput mode: every station connects (subprotocol ocpp1.6) and boots, then sends MeterValues
one CALL at a time, as fast as answered (or at most ``--rate`` per second), for ``--warmup`` and
then ``--duration`` seconds, the measured window. Prints one JSON ``SimResult`` on stdout.

Idle mode, driven by the runner through stdin/stdout: connect and boot ``--warm`` stations, print
``warm``; on a line from stdin connect and boot N more, print ``ready``; on the next line (or
EOF) close all and print the ``SimResult``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from typing import cast

import msgspec
import picows
import uvloop

from bench.load.model import SimResult
from bench.load.stations import Shared, Station

CONNECT_CONCURRENCY = 100
STEP_TIMEOUT_S = 600.0
"""Upper bound of any one phase (connecting 20,000 stations included)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = ("cpu0", "cpu1")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cores_busy() -> list[float]:
    """Busy seconds of cpu0 and cpu1 since boot (user+nice+system+irq+softirq+steal)."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name in CORES:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy[name] = (user + nice + system + irq + softirq + steal) / CLK_TCK
    return [busy.get(name, 0.0) for name in CORES]


def rss_kb(pid: int) -> int:
    """VmRSS of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def raise_nofile(wanted: int) -> None:
    """Up to the hard limit (raising that needs CAP_SYS_RESOURCE, which a container may lack)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def _connect(shared: Shared, url: str, index: int, gate: asyncio.Semaphore) -> Station | None:
    async with gate:
        try:
            _, listener = await asyncio.wait_for(
                picows.ws_connect(
                    lambda: Station(index, shared),
                    f"{url}{index}",
                    extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
                    websocket_handshake_timeout=30,
                    read_buffer_init_size=4096,
                ),
                60,
            )
        except (OSError, TimeoutError, picows.WSError):
            shared.errors["connect"] += 1
            return None
        station = cast(Station, listener)
        try:
            booted = await asyncio.wait_for(asyncio.shield(station.booted), 60)
        except TimeoutError:
            booted = False
        if not booted:
            shared.errors["boot"] += 1
        return station


async def connect_all(shared: Shared, url: str, first: int, count: int) -> list[Station]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [_connect(shared, url, i, gate) for i in range(first, first + count)]
    done = await asyncio.wait_for(asyncio.gather(*tasks), STEP_TIMEOUT_S)
    return [s for s in done if s is not None]


async def close_all(shared: Shared, stations: list[Station]) -> None:
    shared.closing = True
    for station in stations:
        station.close()
    waits = [s.transport.wait_disconnected() for s in stations if s.transport is not None]
    await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)


def _result(
    args: argparse.Namespace, shared: Shared, stations: list[Station], window: tuple[float, ...]
) -> SimResult:
    duration, sim_cpu, *rest = window
    server_cpu, busy = rest[: len(args.watch)], rest[len(args.watch) :]
    return SimResult(
        mode="idle" if args.idle else "throughput",
        stations=args.stations,
        connected=len(stations),
        booted=sum(1 for s in stations if s.booted.done() and s.booted.result()),
        rate_limit_per_station=args.rate,
        duration_s=round(duration, 3),
        answered=shared.answered,
        answered_per_s=round(shared.answered / duration, 1) if duration else 0.0,
        latency=shared.latency(),
        errors=dict(shared.errors),
        sim_cpu=round(sim_cpu / duration, 3) if duration else 0.0,
        server_cpu={
            name: round(cpu / duration, 3) if duration else 0.0
            for (name, _), cpu in zip(args.watch, server_cpu, strict=True)
        },
        cpu_busy={
            name: round(cpu / duration, 3) if duration else 0.0
            for name, cpu in zip(CORES, busy, strict=True)
        },
    )


async def throughput(args: argparse.Namespace) -> SimResult:
    shared = Shared(args.rate)
    stations = await connect_all(shared, args.url, 0, args.stations)
    try:
        shared.sending = True
        for station in stations:
            station.start()
        await asyncio.sleep(args.warmup)
        pids = [pid for _, pid in args.watch]
        before = [time.monotonic(), time.process_time(), *map(cpu_seconds, pids), *cores_busy()]
        shared.recording = True
        await asyncio.sleep(args.duration)
        shared.recording = False
        after = [time.monotonic(), time.process_time(), *map(cpu_seconds, pids), *cores_busy()]
        rss = {name: rss_kb(pid) for name, pid in args.watch}
        shared.sending = False
    finally:
        await close_all(shared, stations)
    window = tuple(b - a for a, b in zip(before, after, strict=True))
    return msgspec.structs.replace(_result(args, shared, stations, window), server_rss_kb=rss)


async def _step(line: str) -> None:
    """Say ``line`` on stdout, then wait for the runner's go-ahead on stdin."""
    print(line, flush=True)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), STEP_TIMEOUT_S)


async def idle(args: argparse.Namespace) -> SimResult:
    shared = Shared(None)
    stations: list[Station] = []
    warm = 0
    try:
        stations += await connect_all(shared, args.url, 0, args.warm)
        warm = len(stations)
        await _step(f"warm {warm}")
        stations += await connect_all(shared, args.url, args.warm, args.stations)
        await _step(f"ready {len(stations) - warm}")
    finally:
        await close_all(shared, stations)
    return _result(args, shared, stations[warm:], (0.0,) * (2 + len(args.watch) + len(CORES)))


def _watch(text: str) -> tuple[str, int]:
    name, _, pid = text.partition("=")
    return name, int(pid)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load.sim", description=__doc__)
    parser.add_argument("--url", required=True, help="ws://host:port/path; /<prefix><i> is added")
    parser.add_argument("--prefix", default="cp", help="station ids are <prefix><index>")
    parser.add_argument("--stations", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, help="MeterValues per second per station (max)")
    parser.add_argument("--watch", type=_watch, action="append", default=[], metavar="NAME=PID")
    parser.add_argument("--idle", action="store_true", help="hold idle connections (see doc)")
    parser.add_argument("--warm", type=int, default=10, help="idle mode: stations before N")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    args.url = f"{args.url.rstrip('/')}/{args.prefix}"
    raise_nofile(args.stations + args.warm + 1024)
    result = uvloop.run(idle(args) if args.idle else throughput(args))
    print(msgspec.json.encode(result).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
