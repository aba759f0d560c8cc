"""The scenarios of the load benchmark, each one child of the fleet simulator's throughput mode
(``bench.fleet.throughput``, scenario ``bench/scenarios/throughput.toml``, pinned to its own core)
against a started server."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from bench.fleet.proc import cpu_seconds
from bench.load.model import IdleResult, SimResult
from bench.load.servers import ROOT, SIM_CPU, Server, pinned, rss_kb

CONNECT_ALLOWANCE_S = 120.0
"""Time a simulator may take beyond warmup + duration (connecting, booting, closing)."""
SETTLE_S = 1.0
QUIET_SHARE = 0.05
"""After a scenario, the next one waits until the server's processes use less than this share of
a core over ``QUIET_WINDOW_S`` (at most ``QUIET_MAX_S``): closing 20,000 idle sessions keeps a
server busy for seconds after the simulator has gone, and the next scenario must not pay for the
previous one's clean-up."""
QUIET_WINDOW_S = 0.5
QUIET_MAX_S = 60.0
"""Pause before reading RSS, and between scenarios (the server finishes closing sessions)."""


@dataclass(frozen=True, slots=True)
class SimOptions:
    realtime: bool
    scratch: Path
    settle_s: float = SETTLE_S
    """Pause before reading RSS and between scenarios (a smoke run shortens it)."""


SCENARIO = "throughput"


def _sim_argv(
    server: Server, stations: int, prefix: str, extra: list[str], version: str = "1.6"
) -> list[str]:
    argv = [sys.executable, "-m", "bench.fleet.throughput", "--url", server.url]
    argv += ["--prefix", prefix, "--scenario", SCENARIO, "--version", version]
    argv += ["--stations", str(stations), *extra]
    for name, pid in server.pids.items():
        argv += ["--watch", f"{name}={pid}"]
    return argv


def _decode(stdout: str, where: str) -> SimResult:
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"simulator printed nothing; see {where}")
    return msgspec.json.decode(lines[-1], type=SimResult)


def throughput(
    server: Server,
    stations: int,
    duration_s: float,
    warmup_s: float,
    options: SimOptions,
    rate: float | None = None,
    version: str = "1.6",
) -> SimResult:
    """Meter values (1.6 MeterValues, 2.x TransactionEvent) from every station, as fast as
    answered or at ``rate`` per station per s."""
    extra = ["--duration", str(duration_s), "--warmup", str(warmup_s)]
    extra += ["--rate", f"{rate:.6g}"] if rate else []
    tag = f"{server.name}-{version}-{stations}{'-rate' if rate else ''}"
    argv = _sim_argv(server, stations, f"{tag}-", extra, version)
    log = options.scratch / f"sim-{tag}.log"
    with log.open("wb") as err:
        done = subprocess.run(
            pinned(argv, SIM_CPU, options.realtime),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=warmup_s + duration_s + CONNECT_ALLOWANCE_S,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"simulator exited with {done.returncode}; see {log}")
    settle(server, options.settle_s)
    return _decode(done.stdout.decode(), str(log))


def settle(server: Server, settle_s: float) -> None:
    """Pause ``settle_s``, then until ``server`` is quiet (see ``QUIET_SHARE``)."""
    time.sleep(settle_s)
    deadline = time.monotonic() + QUIET_MAX_S
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in server.pids.values())
        time.sleep(QUIET_WINDOW_S)
        used = sum(cpu_seconds(pid) for pid in server.pids.values()) - before
        if used < QUIET_SHARE * QUIET_WINDOW_S:
            return


def _line(stream: IO[bytes], timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        raise TimeoutError(f"no line from the simulator within {timeout_s:.0f} s")
    return stream.readline().decode().strip()


def idle_memory(
    server: Server, stations: int, warm: int, options: SimOptions, simulators: int = 1
) -> IdleResult:
    """RSS of the server's processes with ``warm`` stations, then with ``warm + stations``,
    opened by ``simulators`` processes (each has its own open-files limit), each an equal
    share."""
    sims: list[subprocess.Popen[bytes]] = []
    try:
        for j in range(simulators):
            share, extra = _share(stations, simulators, j), _share(warm, simulators, j)
            tag = f"{server.name}-idle-" + (f"{j}-" if simulators > 1 else "")
            argv = _sim_argv(server, share, tag, ["--idle", "--warm", str(extra)])
            log = options.scratch / f"sim-{tag.rstrip('-')}.log"
            with log.open("wb") as err:
                sims.append(subprocess.Popen(
                    pinned(argv, SIM_CPU, options.realtime), cwd=ROOT,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                ))  # fmt: skip
        for sim in sims:
            _line(_out(sim), CONNECT_ALLOWANCE_S)
        time.sleep(options.settle_s)
        before = {name: rss_kb(pid) for name, pid in server.pids.items()}
        for sim in sims:
            _in(sim).write(b"go\n")
            _in(sim).flush()
        for sim in sims:
            _line(_out(sim), CONNECT_ALLOWANCE_S + stations / 100)
        time.sleep(2 * options.settle_s)
        after = {name: rss_kb(pid) for name, pid in server.pids.items()}
        outs = [
            sim.communicate(b"close\n", timeout=CONNECT_ALLOWANCE_S)[0].decode() for sim in sims
        ]
    finally:
        for sim in sims:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
    results = [_decode(out, str(options.scratch)) for out in outs]
    errors: dict[str, int] = {}
    for result in results:
        for kind, count in result.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    settle(server, options.settle_s)
    return IdleResult(
        sum(r.stations for r in results), sum(r.connected for r in results), warm, before, after,
        errors,
    )  # fmt: skip


def _share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split into ``parts`` (the first ones take the remainder)."""
    return total // parts + (1 if index < total % parts else 0)


def _in(sim: subprocess.Popen[bytes]) -> IO[bytes]:
    assert sim.stdin is not None
    return sim.stdin


def _out(sim: subprocess.Popen[bytes]) -> IO[bytes]:
    assert sim.stdout is not None
    return sim.stdout
