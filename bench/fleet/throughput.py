"""Throughput mode of the fleet simulator: N lean stations (``bench.fleet.lean``) on one core,
driven by the ``throughput`` scenario (``bench/scenarios/throughput.toml``).

    python -m bench.fleet.throughput --url ws://127.0.0.1:PORT/ocpp --stations N
        [--version 1.6|2.0.1|2.1] [--scenario throughput] [--set KEY=VALUE ...]
        [--duration S] [--warmup S] [--rate PER_STATION_PER_S] [--watch NAME=PID ...]
    python -m bench.fleet.throughput --url ... --stations N --idle [--warm K]

Throughput mode: every station connects (subprotocol of ``--version``), boots and starts one
transaction, then sends meter values (1.6 MeterValues, 2.x TransactionEvent Updated, ten sampled
values) one CALL at a time, as fast as answered (or at most ``--rate`` per second), for the
scenario's ``warmup_s`` and then ``duration_s`` seconds, the measured window. Prints one JSON
``SimResult`` on stdout; with ``--progress``, a line a second on stderr.

Idle mode (stations boot and start no transaction), driven by the runner through stdin/stdout:
connect and boot ``--warm`` stations, print
``warm``; on a line from stdin connect and boot N more, print ``ready``; on the next line (or
EOF) close all and print the ``SimResult``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import cast

import msgspec
import picows
import uvloop

from bench.fleet import scenario as scenarios
from bench.fleet.lean import LeanShared, LeanStation
from bench.fleet.model import SimResult
from bench.fleet.payloads import SUBPROTOCOLS
from bench.fleet.proc import CORES, cores_busy, cpu_seconds, raise_nofile, rss_kb

CONNECT_CONCURRENCY = 100
STEP_TIMEOUT_S = 600.0
"""Upper bound of any one phase (connecting 20,000 stations included)."""


async def _connect(
    shared: LeanShared, url: str, index: int, gate: asyncio.Semaphore, prefix: str
) -> LeanStation | None:
    station_id = f"{prefix}{index}"
    async with gate:
        try:
            _, listener = await asyncio.wait_for(
                picows.ws_connect(
                    lambda: LeanStation(index, station_id, shared),
                    f"{url}/{station_id}",
                    extra_headers={"Sec-WebSocket-Protocol": shared.dialect.subprotocol},
                    websocket_handshake_timeout=30,
                    read_buffer_init_size=4096,
                ),
                60,
            )
        except (OSError, TimeoutError, picows.WSError):
            shared.errors["connect"] += 1
            return None
        station = cast(LeanStation, listener)
        try:
            await asyncio.wait_for(asyncio.shield(station.booted), 60)
        except TimeoutError:
            shared.errors["boot"] += 1
        return station


async def connect_all(
    shared: LeanShared, args: argparse.Namespace, first: int, count: int
) -> list[LeanStation]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [_connect(shared, args.url, i, gate, args.prefix) for i in range(first, first + count)]
    done = await asyncio.wait_for(asyncio.gather(*tasks), STEP_TIMEOUT_S)
    return [s for s in done if s is not None]


async def close_all(shared: LeanShared, stations: list[LeanStation]) -> None:
    shared.closing = True
    for station in stations:
        station.close()
    waits = [s.transport.wait_disconnected() for s in stations if s.transport is not None]
    await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)


def _booted(station: LeanStation) -> bool:
    return station.booted.done() and station.booted.result()


def _result(
    args: argparse.Namespace,
    shared: LeanShared,
    stations: list[LeanStation],
    window: tuple[float, ...],
) -> SimResult:
    duration, sim_cpu, *rest = window
    server_cpu, busy = rest[: len(args.watch)], rest[len(args.watch) :]

    def share(seconds: float) -> float:
        return round(seconds / duration, 3) if duration else 0.0

    return SimResult(
        mode="idle" if args.idle else "throughput",
        stations=args.stations,
        connected=len(stations),
        booted=sum(1 for s in stations if _booted(s)),
        rate_limit_per_station=args.rate,
        duration_s=round(duration, 3),
        answered=shared.answered,
        answered_per_s=round(shared.answered / duration, 1) if duration else 0.0,
        latency=shared.latency(),
        errors=dict(shared.errors),
        sim_cpu=share(sim_cpu),
        server_cpu={
            name: share(cpu) for (name, _), cpu in zip(args.watch, server_cpu, strict=True)
        },
        cpu_busy={name: share(cpu) for name, cpu in zip(CORES, busy, strict=True)},
        version=args.version,
    )


async def _progress(shared: LeanShared, total_s: float) -> None:
    started, last = time.monotonic(), 0
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic() - started
        phase = "measuring" if shared.recording else "warming up"
        print(
            f"  {now:4.0f}/{total_s:.0f} s {phase}: {shared.answered - last:,} answered/s",
            file=sys.stderr,
            flush=True,
        )
        last = shared.answered


async def throughput(args: argparse.Namespace) -> SimResult:
    shared = LeanShared(args.scenario, args.version, args.rate)
    warmup, duration = args.scenario.warmup_s, args.scenario.duration_s
    stations = await connect_all(shared, args, 0, args.stations)
    ticker = asyncio.create_task(_progress(shared, warmup + duration)) if args.progress else None
    try:
        shared.sending = True
        for station in stations:
            if _booted(station):
                station.start()
        await asyncio.sleep(warmup)
        pids = [pid for _, pid in args.watch]
        before = [time.monotonic(), time.process_time(), *map(cpu_seconds, pids), *cores_busy()]
        shared.recording = True
        await asyncio.sleep(duration)
        shared.recording = False
        after = [time.monotonic(), time.process_time(), *map(cpu_seconds, pids), *cores_busy()]
        rss = {name: rss_kb(pid) for name, pid in args.watch}
        shared.sending = False
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await close_all(shared, stations)
    window = tuple(b - a for a, b in zip(before, after, strict=True))
    return msgspec.structs.replace(_result(args, shared, stations, window), server_rss_kb=rss)


async def _step(line: str) -> None:
    """Say ``line`` on stdout, then wait for the runner's go-ahead on stdin."""
    print(line, flush=True)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), STEP_TIMEOUT_S)


async def idle(args: argparse.Namespace) -> SimResult:
    shared = LeanShared(args.scenario, args.version, None, transact=False)
    stations: list[LeanStation] = []
    warm = 0
    try:
        stations += await connect_all(shared, args, 0, args.warm)
        warm = len(stations)
        await _step(f"warm {warm}")
        stations += await connect_all(shared, args, args.warm, args.stations)
        await _step(f"ready {len(stations) - warm}")
    finally:
        await close_all(shared, stations)
    return _result(args, shared, stations[warm:], (0.0,) * (2 + len(args.watch) + len(CORES)))


def _watch(text: str) -> tuple[str, int]:
    name, _, pid = text.partition("=")
    return name, int(pid)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet.throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="ws://host:port/path; /<prefix><i> is added")
    parser.add_argument("--prefix", default="cp", help="station ids are <prefix><index>")
    parser.add_argument("--stations", type=int, required=True)
    parser.add_argument("--version", choices=sorted(SUBPROTOCOLS), default="1.6")
    parser.add_argument("--scenario", default="throughput", help="a name or a .toml file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--duration", type=float, help="measured seconds (scenario: duration_s)")
    parser.add_argument("--warmup", type=float, help="seconds before the window (warmup_s)")
    parser.add_argument("--rate", type=float, help="meter values per second per station (max)")
    parser.add_argument("--watch", type=_watch, action="append", default=[], metavar="NAME=PID")
    parser.add_argument("--idle", action="store_true", help="hold idle connections (see doc)")
    parser.add_argument("--warm", type=int, default=10, help="idle mode: stations before N")
    parser.add_argument("--progress", action="store_true", help="a line a second on stderr")
    args = parser.parse_args(argv)
    overrides = list(args.set)
    overrides += [f"duration_s={args.duration}"] if args.duration is not None else []
    overrides += [f"warmup_s={args.warmup}"] if args.warmup is not None else []
    args.scenario = scenarios.load(args.scenario, overrides)
    args.url = args.url.rstrip("/")
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    raise_nofile(args.stations + args.warm + 1024)
    result = uvloop.run(idle(args) if args.idle else throughput(args))
    print(msgspec.json.encode(result).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
