"""Load benchmark: csms beside the ocpp-package reference and a bare picows echo, in one run.

    .venv/bin/python -m bench.load [--quick | --full] [--json OUT] [--no-readme]

Each server runs pinned to CPU 0 (csms with its own nats-server, also on CPU 0), the station
simulator pinned to CPU 1. Per server: RSS around N idle stations, MeterValues throughput at each
station count, and latency at half the best throughput. Writes ``bench/results/load.json`` and
rewrites the load section of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.load import readme, report, scenarios
from bench.load.environment import environment, load_average
from bench.load.model import Plan, Run, ServerResult
from bench.load.servers import ROOT, SIM_CPU, Launcher
from bench.plots import render_safely

PLANS = {
    "quick": Plan([50], 3.0, 0.5, 50, 200, 10),
    "default": Plan([50, 200], 10.0, 2.0, 200, 2_000, 10),
    "full": Plan([50, 200], 10.0, 2.0, 200, 20_000, 10),
}
SERVERS = ("csms", "reference", "echo")
FD_HEADROOM = 256
"""File descriptors a server or the simulator needs besides the stations' sockets."""
FAILURES = (RuntimeError, OSError, TimeoutError, subprocess.SubprocessError, msgspec.DecodeError)


def _attempt(result: ServerResult, what: str, step: Callable[[], None]) -> None:
    """Run one scenario; a failure is recorded (and printed) and the run goes on."""
    try:
        step()
    except FAILURES as err:
        result.failures.append(f"{what}: {type(err).__name__}: {err}")
        print(f"  {result.name} {what} FAILED: {err}", file=sys.stderr)


def measure(
    name: str, plan: Plan, launcher: Launcher, options: scenarios.SimOptions
) -> ServerResult:
    result = ServerResult(name, report.LABELS[name])
    try:
        server = launcher.start(name)
    except FAILURES as err:
        result.failures.append(f"start: {err}")
        launcher.stop_all()
        return result
    try:

        def idle() -> None:
            result.idle = scenarios.idle_memory(
                server, plan.idle_stations, plan.warm_stations, options
            )
            print(f"  {name} idle: {report.idle_summary(result)}", file=sys.stderr)

        def full_speed(stations: int) -> None:
            run = scenarios.throughput(server, stations, plan.duration_s, plan.warmup_s, options)
            result.throughput.append(run)
            print(f"  {name} {stations} stations: {report.run_summary(run)}", file=sys.stderr)

        def half_rate() -> None:
            stations = plan.half_rate_stations
            rate = result.max_rate / 2 / stations
            run = scenarios.throughput(
                server, stations, plan.duration_s, plan.warmup_s, options, rate
            )
            result.half_rate = run
            print(f"  {name} half rate: {report.run_summary(run)}", file=sys.stderr)

        _attempt(result, f"idle {plan.idle_stations}", idle)
        for stations in plan.throughput_stations:
            _attempt(result, f"throughput {stations}", functools.partial(full_speed, stations))
        if result.max_rate > 0:
            _attempt(result, "half rate", half_rate)
    finally:
        launcher.stop_all()
    return result


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke run: 50 stations, 3 s, N=200")
    size.add_argument("--full", action="store_true", help="idle memory at N=20,000")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "load.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "bench" / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument(
        "--sched",
        choices=["fifo", "normal"],
        default="normal",
        help="normal (default): ordinary scheduling; fifo: servers and simulator at SCHED_FIFO 1 "
        "(needs root), so that other work on a shared machine does not decide the result; it "
        "starves that other work for the length of the run",
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    return parser.parse_args(argv)


def _fit(plan: Plan) -> Plan:
    """Idle stations within the hard limit of open files (which only CAP_SYS_RESOURCE raises)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    most = hard - plan.warm_stations - FD_HEADROOM
    if hard == resource.RLIM_INFINITY or plan.idle_stations <= most:
        return plan
    print(
        f"idle stations {plan.idle_stations:,} → {most:,}: open files limit {hard:,}",
        file=sys.stderr,
    )
    return msgspec.structs.replace(plan, idle_stations=most)


def _command(argv: list[str]) -> str:
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), "-m", "bench.load", *argv])


def main(argv: list[str]) -> None:
    args = _parse(argv)
    plan = _fit(PLANS["quick" if args.quick else "full" if args.full else "default"])
    realtime = args.sched == "fifo"
    os.sched_setaffinity(0, {SIM_CPU})  # keep the runner off the servers' core
    started = dt.datetime.now(dt.UTC)
    env = environment(realtime)
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    nofile = plan.idle_stations + plan.warm_stations + FD_HEADROOM
    launcher = Launcher(scratch, realtime, nofile)
    options = scenarios.SimOptions(realtime, scratch)
    results: list[ServerResult] = []
    try:
        for name in args.servers.split(","):
            print(f"{name}:", file=sys.stderr)
            results.append(measure(name, plan, launcher, options))
    finally:
        launcher.stop_all()
        for data in ("nats", "csms"):  # the stored events; logs stay until the run succeeded
            shutil.rmtree(scratch / data, ignore_errors=True)
    failed = any(r.failures for r in results)
    if failed:
        print(f"logs kept in {scratch}", file=sys.stderr)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    env["load_average_end"] = load_average()
    finished = dt.datetime.now(dt.UTC)
    run = Run(
        started=started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        finished=finished.strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=_command(argv),
        plan=plan,
        environment=env,
        servers=results,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(msgspec.json.format(msgspec.json.encode(run)) + b"\n")
    print(f"wrote {args.json}", file=sys.stderr)
    if not args.no_readme:
        readme.update_readme(args.readme, readme.render(run))
        print(f"rewrote the load section of {args.readme}", file=sys.stderr)
    render_safely(args.json.parent, None if args.no_readme else args.readme)


if __name__ == "__main__":
    main(sys.argv[1:])
