"""Boot storm: N stations connect and boot at once against csms, the ocpp-package reference and the
echo ceiling, in one run.

    .venv/bin/python -m bench.load.boot_storm [--stations 10000] [--concurrency 0,100]
        [--servers csms,reference,echo] [--transports ws,wss] [--json OUT] [--no-readme]
        [--render JSON]

Per server and per cap of handshakes in flight at the simulator (0: all at once), a fresh server
pinned to CPU 0 (csms with its own nats-server, also on CPU 0) and the fleet simulator
(``bench.fleet``, scenario ``boot-storm``, OCPP 1.6) pinned to CPU 1; plain ws:// and TLS
wss:// (``--transports``). Measured: time until every
station is Accepted, handshakes/s, failures, and the kernel's listen-queue overflows
(``TcpExtListenOverflows``) during the run. Writes ``bench/results/boot_storm.json`` and the
boot-storm section of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from bench.fleet.model import FleetResult
from bench.load import report
from bench.load.environment import environment
from bench.load.model import Report
from bench.load.progress import Progress, run_watched
from bench.load.servers import SIM_CPU, Launcher, pinned
from bench.load.steady import failures
from bench.load.tls import make_server_certificate

FD_HEADROOM = 256
LIMIT_S = 30.0
"""Longest a storm may run (the fleet stops at once when every station is Accepted)."""
BAR_S = 10.0
BAR_STATIONS = 10_000
SOURCE_ADDRESSES = 250
"""Stations spread over 127.0.0.2-127.0.0.251 (40 per address at 10,000): many peers as in the
field, so per-address defences (csms: 20 TLS handshakes/s per address after a burst of 50) see
realistic addresses rather than one address doing everything."""
SIM_BUSY = 0.8
"""Simulator CPU share over the whole row from which its rate may be the simulator's limit."""


class StormRun(msgspec.Struct):
    server: str
    concurrency: int
    transport: str = "ws"
    result: FleetResult | None = None
    listen_overflows: int = 0
    failure: str = ""


class StormReport(Report):
    stations: int
    runs: list[StormRun]


def listen_overflows() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split(), values.split(), strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def storm(
    launcher: Launcher, name: str, stations: int, concurrency: int, scratch: Path
) -> StormRun:
    transport = "wss" if launcher.tls else "ws"
    run = StormRun(name, concurrency, transport)
    try:
        server = launcher.start(name)
        argv = [sys.executable, "-m", "bench.fleet", "--url", server.url]
        argv += ["--stations", str(stations), "--scenario", "boot-storm", "--version", "1.6"]
        argv += ["--duration", str(LIMIT_S), "--prefix", f"{name}-{concurrency}-"]
        argv += ["--connect-concurrency", str(concurrency)]
        argv += ["--source-addresses", str(SOURCE_ADDRESSES)]
        if launcher.tls is not None:
            argv += ["--ca-file", str(launcher.tls.ca_file)]
        before = listen_overflows()
        log = scratch / f"fleet-{name}-{transport}-{concurrency}.log"
        try:
            stdout = run_watched(pinned(argv, SIM_CPU, False), log, LIMIT_S + 90)
        finally:
            run.listen_overflows = listen_overflows() - before
        run.result = msgspec.json.decode(stdout.strip().splitlines()[-1], type=FleetResult)
    except (RuntimeError, OSError, subprocess.SubprocessError, msgspec.DecodeError) as err:
        run.failure = f"{type(err).__name__}: {err}"
    finally:
        launcher.stop_all()
    return run


def _summary(run: StormRun) -> str:
    if run.result is None:
        return f"FAILED {run.failure}"
    boot = run.result.boot
    return (
        f"{boot.accepted:,}/{run.result.stations:,} Accepted, all in {boot.all_accepted_s} s, "
        f"{boot.handshakes_per_s:,.0f} handshakes/s, listen overflows {run.listen_overflows:,}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.boot_storm")
    parser.add_argument("--stations", type=int, default=BAR_STATIONS)
    parser.add_argument("--concurrency", default="0,100", help="ws:// handshake caps, comma-sep.")
    parser.add_argument("--tls-concurrency", default="100", help="wss:// handshake caps")
    parser.add_argument("--servers", default="csms,reference,echo")
    parser.add_argument("--transports", default="ws,wss", help="ws (plain), wss (TLS) or both")
    report.add_output_arguments(parser, "boot_storm")
    args = parser.parse_args(argv)
    if report.render_only(args, SECTION):
        return 0
    os.sched_setaffinity(0, {SIM_CPU})
    result = StormReport(
        started=report.utc_now(),
        command=report.command("bench.load.boot_storm", argv),
        stations=args.stations,
        environment=environment(False),
        runs=[],
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    tls = make_server_certificate(scratch / "tls") if "wss" in args.transports else None
    plan = [
        (transport, name, int(cap))
        for transport in args.transports.split(",")
        for name in args.servers.split(",")
        for cap in (args.tls_concurrency if transport == "wss" else args.concurrency).split(",")
    ]
    progress = Progress(len(plan))
    for transport, name, concurrency in plan:
        launcher = Launcher(
            scratch, False, args.stations + FD_HEADROOM, tls if transport == "wss" else None
        )
        progress.step(f"{name} {transport}, cap {concurrency or 'none'}")
        try:
            run = storm(launcher, name, args.stations, concurrency, scratch)
        finally:
            launcher.stop_all()
        result.runs.append(run)
        print(f"  {SECTION.summary(run)}", file=sys.stderr)
        shutil.rmtree(scratch / "nats", ignore_errors=True)
        shutil.rmtree(scratch / "csms", ignore_errors=True)
        time.sleep(1.0)
    report.clean_scratch(scratch, any(r.failure for r in result.runs))
    report.finish_run(result, args, SECTION)
    return 0


def _cell(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.2f}{unit}"


def render(storm_report: StormReport) -> str:
    env = storm_report.environment
    begin, end = SECTION.markers
    lines = [
        begin,
        "## Boot storm: N stations connect and boot at once",
        "",
        f"- **Date**: {storm_report.started} to {storm_report.finished}; **command**: "
        f"`{storm_report.command}`",
        *report.machine_lines(env),
        "- **Setup**: a fresh server per row pinned to CPU 0 (csms with its own nats-server, "
        "also on CPU 0, `projections = false`, per-address handshake cap lifted); the fleet "
        "simulator (`bench/fleet`, scenario `bench/scenarios/boot-storm.toml`) pinned to CPU 1. "
        f"{storm_report.stations:,} stations, plain ws:// and TLS wss:// (a throw-away CA, RSA "
        "2048 server certificate, TLS 1.2+; csms with its profile-2/3 TLS settings), "
        f"subprotocol `ocpp1.6`, from {SOURCE_ADDRESSES} loopback source addresses "
        "(127.0.0.2 on; csms limits TLS handshakes per address): WebSocket "
        "handshake, BootNotification (the time counted is until its Accepted answer), then one "
        "StatusNotification. *cap* = handshakes the simulator keeps in flight (none: all "
        "stations at once). Listen overflows: the kernel's `TcpExtListenOverflows` during the "
        "row (SYNs dropped because the server's accept queue was full; each costs the station "
        "a 1 s, 3 s, ... retransmission).",
        f"- **Servers**: {'; '.join(report.LABELS.values())}. Echo answers BootNotification with "
        "a canned Accepted.",
        "",
        "| server | transport | cap | Accepted | all Accepted s | p50 s | p99 s | handshakes/s "
        "| failures | listen overflows | sim CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for run in storm_report.runs:
        cap = str(run.concurrency) if run.concurrency else "none"
        if run.result is None:
            lines.append(
                f"| {run.server} | {run.transport} | {cap} | — | — | — | — | — | {run.failure} "
                "| — | — |"
            )
            continue
        r, boot = run.result, run.result.boot
        failed = failures(r)
        lines.append(
            f"| {run.server} | {run.transport} | {cap} | {boot.accepted:,} of {r.stations:,} "
            f"| {_cell(boot.all_accepted_s)} | {_cell(boot.accepted_p50_s)} "
            f"| {_cell(boot.accepted_p99_s)} | {boot.handshakes_per_s:,.0f} | {failed} "
            f"| {run.listen_overflows:,} | {r.sim_cpu:.0%}{' ⚠' if r.sim_cpu >= SIM_BUSY else ''} |"
        )
    lines += [
        "",
        f"sim CPU = the simulator's CPU time / the row's wall time; ⚠ ≥ {SIM_BUSY:.0%}: the "
        "simulator may be what limits that row (its rate is then a lower bound).",
        "",
        *_bar(storm_report),
        end,
    ]
    return "\n".join(lines)


def _bar(storm_report: StormReport) -> list[str]:
    ours = [r for r in storm_report.runs if r.server == "csms" and r.result is not None]
    if not ours:
        return ["The bar (10,000 stations all Accepted in ≤ 10 s): not measured (csms failed)."]
    lines = []
    for run in ours:
        assert run.result is not None
        took = run.result.boot.all_accepted_s
        met = (
            took is not None
            and took <= BAR_S
            and storm_report.stations >= BAR_STATIONS
            and run.transport == "ws"
        )
        cap = f"{run.transport}, " + (
            f"cap {run.concurrency}" if run.concurrency else "all at once"
        )
        others = ", ".join(
            f"{r.server} {_cell(r.result.boot.all_accepted_s, ' s')}"
            if r.result.boot.all_accepted_s is not None
            else f"{r.server} {r.result.boot.accepted:,} Accepted"
            for r in storm_report.runs
            if r.server != "csms"
            and r.concurrency == run.concurrency
            and r.transport == run.transport
            and r.result is not None
        )
        boot = run.result.boot
        measured = (
            f"{took:,.2f} s"
            if took is not None
            else f"only {boot.accepted:,} of {run.result.stations:,} Accepted within {LIMIT_S:g} s"
        )
        beside = f"; beside it {others}" if others else ""
        if run.transport == "wss":  # the bar is set for plain ws://
            lines.append(f"- TLS ({cap}): csms {measured}{beside}.")
            continue
        lines.append(
            f"- The bar, {storm_report.stations:,} stations all Accepted in ≤ {BAR_S:g} s "
            f"({cap}): csms {measured}: {'met' if met else '**not met**'}{beside}."
        )
    for row in sorted({(r.transport, r.concurrency) for r in storm_report.runs}):
        times = {
            r.server: r.result.boot.all_accepted_s
            for r in storm_report.runs
            if r.result is not None and (r.transport, r.concurrency) == row
        }
        label = f"All Accepted ({row[0]}, {f'cap {row[1]}' if row[1] else 'all at once'})"
        lines.append(f"- {report.ratios(label, times, ' s')}")
    if any(r.listen_overflows for r in storm_report.runs):
        lines.append(
            "- Listen overflows: the servers listen with the default backlog of their libraries "
            "(100 in asyncio, picows and aiofastnet); with every station at once the accept "
            "queue overflows, the dropped SYNs are retried by the kernel after 1, 3, 7, 15 s and "
            "the unlucky stations run into the simulator's handshake timeout. A larger backlog "
            "(and `net.core.somaxconn`, 4096 here) is the server's side of a boot storm."
        )
    return lines


SECTION = report.Section("boot-storm", render, StormReport, _summary)

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
