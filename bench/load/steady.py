"""Steady: N stations at realistic rates against csms, the ocpp-package reference and the echo
ceiling, in one run: server CPU, memory per connection and latency.

    .venv/bin/python -m bench.load.steady [--stations 10000] [--duration 30]
        [--servers csms,reference,echo] [--json OUT] [--no-readme] [--render JSON]

Per server: a fresh server pinned to CPU 0 (csms with its own nats-server, also on CPU 0), RSS of
its processes with nobody connected, then the fleet simulator (``bench.fleet``, scenario
``steady``, OCPP 1.6, free vending so that the echo's empty answers drive the same traffic)
pinned to CPU 1: connect (100 handshakes in flight), warm up, then the measured window.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.fleet.model import FleetResult
from bench.load import report
from bench.load.environment import environment
from bench.load.model import Report
from bench.load.progress import Progress, run_watched
from bench.load.report import Section
from bench.load.servers import SIM_CPU, Launcher, pinned, rss_kb

FD_HEADROOM = 256
SETTLE_S = 1.0
WARMUP_S = 15.0


class SteadyRun(msgspec.Struct):
    server: str
    rss_idle_kb: dict[str, int] = msgspec.field(default_factory=dict)
    result: FleetResult | None = None
    failure: str = ""

    def per_station_kb(self) -> float | None:
        if self.result is None or not self.result.boot.connected:
            return None
        grown = sum(self.result.server_rss_kb.values()) - sum(self.rss_idle_kb.values())
        return grown / self.result.boot.connected


class SteadyReport(Report):
    stations: int
    duration_s: float
    runs: list[SteadyRun]


def steady(
    launcher: Launcher,
    name: str,
    args: argparse.Namespace,
    scratch: Path,
    scenario: str = "steady",
    warmup_s: float = WARMUP_S,
) -> SteadyRun:
    """One fresh server, its idle RSS, then the fleet running ``scenario`` (1.6, free vending)."""
    run = SteadyRun(name)
    try:
        server = launcher.start(name)
        time.sleep(SETTLE_S)
        run.rss_idle_kb = {n: rss_kb(pid) for n, pid in server.pids.items()}
        argv = [sys.executable, "-m", "bench.fleet", "--url", server.url]
        argv += ["--stations", str(args.stations), "--scenario", scenario, "--version", "1.6"]
        argv += ["--duration", str(args.duration), "--prefix", f"{name}-st-"]
        argv += ["--connect-concurrency", "100", "--set", "authorize=false"]
        argv += ["--set", f"warmup_s={warmup_s}"]
        for n, pid in server.pids.items():
            argv += ["--watch", f"{n}={pid}"]
        log = scratch / f"fleet-{name}-{scenario}.log"
        timeout_s = warmup_s + args.duration + 240
        stdout = run_watched(pinned(argv, SIM_CPU, False), log, timeout_s)
        run.result = msgspec.json.decode(stdout.strip().splitlines()[-1], type=FleetResult)
    except (RuntimeError, OSError, subprocess.SubprocessError, msgspec.DecodeError) as err:
        run.failure = f"{type(err).__name__}: {err}"
    finally:
        launcher.stop_all()
    return run


def failures(result: FleetResult) -> str:
    """Errors, timeouts and CALLERRORs of a fleet run, as one table cell ("0" if none)."""
    found = {
        **result.errors,
        **{f"timeout {k}": v for k, v in result.timeouts.items()},
        **{f"CALLERROR {k}": v for k, v in result.callerrors.items()},
    }
    return ", ".join(f"{k} {v:,}" for k, v in sorted(found.items())) or "0"


def _cpu_per_call_us(result: FleetResult) -> float | None:
    cpu = sum(result.server_cpu.values())
    return cpu * 1e6 / result.answered_per_s if result.answered_per_s else None


def _summary(run: SteadyRun) -> str:
    if run.result is None:
        return f"FAILED {run.failure}"
    r = run.result
    return (
        f"{r.boot.connected:,} connected, {r.answered_per_s:,.0f} answered/s, p99 "
        f"{r.latency.p99} ms, CPU {sum(r.server_cpu.values()):.0%}, "
        f"{run.per_station_kb() or 0:,.1f} KB/station"
    )


def run_scenario(
    argv: list[str], module: str, scenario: str, warmup_s: float, stations: int, section: Section
) -> int:
    """The runner of steady and burst: per server, a fresh server and the fleet on
    ``scenario``; then the JSON, the README section and the plots."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--stations", type=int, default=stations)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--servers", default="csms,reference,echo")
    report.add_output_arguments(parser, section.name)
    args = parser.parse_args(argv)
    if report.render_only(args, section):
        return 0
    os.sched_setaffinity(0, {SIM_CPU})
    result = SteadyReport(
        started=report.utc_now(),
        command=report.command(module, argv),
        stations=args.stations,
        duration_s=args.duration,
        environment=environment(False),
        runs=[],
    )
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{section.name}-"))
    launcher = Launcher(scratch, False, args.stations + FD_HEADROOM)
    names = args.servers.split(",")
    progress = Progress(len(names))
    try:
        for name in names:
            progress.step(f"{name}: {args.stations:,} stations, {scenario}")
            run = steady(launcher, name, args, scratch, scenario, warmup_s)
            result.runs.append(run)
            print(f"  {name}: {section.summary(run)}", file=sys.stderr)
            for data in ("nats", "csms"):
                shutil.rmtree(scratch / data, ignore_errors=True)
    finally:
        launcher.stop_all()
    report.clean_scratch(scratch, any(r.failure for r in result.runs))
    report.finish_run(result, args, section)
    return 0


def main(argv: list[str]) -> int:
    return run_scenario(argv, "bench.load.steady", "steady", WARMUP_S, 10_000, SECTION)


def render(steady_report: SteadyReport) -> str:
    env = steady_report.environment
    begin, finish = SECTION.markers
    lines = [
        begin,
        "## Steady: stations at realistic rates (CPU, memory per connection, latency)",
        "",
        f"- **Date**: {steady_report.started} to {steady_report.finished}; **command**: "
        f"`{steady_report.command}`",
        *report.machine_lines(env),
        "- **Setup**: a fresh server per row pinned to CPU 0 (csms with its own nats-server, "
        "also on CPU 0, `projections = false`); the fleet simulator (`bench/fleet`, scenario "
        f"`bench/scenarios/steady.toml`, OCPP 1.6) pinned to CPU 1: {steady_report.stations:,} "
        "stations, heartbeat 300 s, about half of them charging, meter values (10 sampled "
        "values) every 10-60 s while charging, free vending (no Authorize: the echo's empty "
        "answers then drive the same traffic). The stations found charging start their "
        "sessions spread over the first 60 s after their boot (1.6 needs a transaction id), so "
        "the window also sees that ramp of StartTransactions. "
        f"{WARMUP_S:g} s warm-up after the last boot, then {steady_report.duration_s:g} s "
        "measured; errors: `timeout X` = a CALL unanswered after 30 s (sent again if it is a "
        "transaction message).",
        "- **Columns**: server CPU = CPU time of the server's processes (csms: + nats-server) "
        "over the window / window; RSS per station = (RSS at the end of the window - RSS before "
        "any station connected) / connected stations, all processes of the server.",
        "",
        "| server | connected | answered/s | p50 ms | p99 ms | max ms | errors | server CPU "
        "| RSS idle MB | RSS end MB | RSS per station KB | sim CPU |",
        "|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|",
    ]
    for run in steady_report.runs:
        if run.result is None:
            lines.append(
                f"| {run.server} | — | — | — | — | — | {run.failure} | — | — | — | — | — |"
            )
            continue
        r = run.result
        failed = failures(r)
        idle = sum(run.rss_idle_kb.values()) / 1024
        end = sum(r.server_rss_kb.values()) / 1024
        lines.append(
            f"| {run.server} | {r.boot.connected:,} | {r.answered_per_s:,.0f} | {r.latency.p50} "
            f"| {r.latency.p99} | {r.latency.max} | {failed} | {sum(r.server_cpu.values()):.1%} "
            f"| {idle:,.0f} | {end:,.0f} | {run.per_station_kb() or 0:,.1f} | {r.sim_cpu:.0%} |"
        )
    done = {run.server: run for run in steady_report.runs if run.result is not None}

    def per(value: Callable[[SteadyRun], float | None]) -> dict[str, float | None]:
        return {name: value(run) for name, run in done.items()}

    lines += [
        "",
        report.ratios(
            "Server CPU per answered call, µs",
            per(lambda r: _cpu_per_call_us(r.result) if r.result else None),
        ),
        report.ratios(
            "p99 latency", per(lambda r: r.result.latency.p99 if r.result else None), " ms"
        ),
        report.ratios("RSS per station", per(lambda r: r.per_station_kb()), " KB"),
        "",
        f"Servers: {'; '.join(report.LABELS.values())}.",
        finish,
    ]
    return "\n".join(lines)


SECTION = report.Section("steady", render, SteadyReport, _summary)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
