"""Load benchmark: csms beside the ocpp-package reference and a bare picows echo, in one run.

    .venv/bin/python -m bench.load [--smoke | --quick | --full] [--versions 1.6,2.0.1,2.1]
        [--servers csms,reference,echo] [--json OUT] [--no-readme]

Each server runs pinned to CPU 0 (csms with its own nats-server, also on CPU 0), the station
simulator (``bench.fleet.throughput``, scenario ``bench/scenarios/throughput.toml``) pinned to
CPU 1. Per server: RSS around N idle stations, meter-values throughput at each station count and
OCPP version (1.6 MeterValues, 2.x TransactionEvent Updated, ten sampled values each), and
latency at half the best 1.6 throughput. Writes ``bench/results/load.json`` and rewrites the load
section of ``bench/README.md``. Its profile: ``python -m bench.load.profile``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.fleet import scenario as fleet_scenarios
from bench.load import host_memory, readme, report, scenarios
from bench.load.environment import environment
from bench.load.model import HEADLINE_VERSION, Plan, Run, ServerResult
from bench.load.progress import Progress
from bench.load.servers import SERVER_CPU, SIM_CPU, Launcher, Server
from csms.settings import Settings

VERSIONS = ("1.6", "2.0.1", "2.1")


def plans() -> dict[str, Plan]:
    """Sizes of a run; window and warm-up from ``bench/scenarios/throughput.toml`` (smoke and
    quick shorten them)."""
    scenario = fleet_scenarios.load(scenarios.SCENARIO)
    window, warmup = scenario.duration_s, scenario.warmup_s
    return {
        "smoke": Plan(
            [10],
            1.0,
            0.3,
            10,
            20,
            5,
            sustained_warmup_s=0.5,
            sustained_s=1.0,
            idle_group_stations=20,
        ),
        "quick": Plan([50], 3.0, 0.5, 50, 200, 10),
        "default": Plan([50, 200], window, warmup, 200, 2_000, 10),
        "full": Plan(
            [50, 200],
            window,
            warmup,
            200,
            20_000,
            10,
            sustained_warmup_s=SUSTAINED_WARMUP_S,
            sustained_s=SUSTAINED_S,
            fill_memory=True,
            expiry_wait_s=EXPIRY_WAIT_S,
            idle_group_stations=20_000,
        ),
    }


SUSTAINED_WARMUP_S = 150.0
"""Longer than JetStream's 120 s duplicate window (its table at full size) and than the first
minutes in which the stream grows into free memory (bench/README.md: sustained rate)."""
SUSTAINED_S = 30.0
EXPIRY_WAIT_S = Settings().stream_duplicate_window_s + 10.0
"""The duplicate window csms runs with in the benchmark (the default), and a margin."""


SERVERS = ("csms", "reference", "echo")
STORING = ("csms",)
"""Servers that write a stream: the page-cache fill (``Plan.fill_memory``) concerns only them."""
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


def _fills(plan: Plan, name: str) -> bool:
    return plan.fill_memory and plan.sustained_s > 0 and name in STORING


def steps(plan: Plan, name: str) -> int:
    """Steps of one server (for the progress display): idle, throughput rows, sustained (twice
    around a fill for a storing server), half rate."""
    sustained = (2 if _fills(plan, name) else 1) if plan.sustained_s > 0 else 0
    group = 1 if _groups(plan, name) else 0
    return group + 1 + len(plan.versions) * len(plan.throughput_stations) + sustained + 1


def _groups(plan: Plan, name: str) -> bool:
    return plan.idle_group_stations > 0 and name == "csms"


def _idle_group(
    plan: Plan,
    launcher: Launcher,
    options: scenarios.SimOptions,
    progress: Progress,
    result: ServerResult,
) -> None:
    """csms's idle memory at ``plan.idle_group_stations`` with a ``--workers`` group, on an
    instance (and a scratch directory) of its own, stopped before the other scenarios."""
    workers = plan.idle_group_workers
    progress.step(f"csms: idle memory, {plan.idle_group_stations:,} stations, {workers} workers")
    scratch = options.scratch / "workers"
    scratch.mkdir(exist_ok=True)
    group = dataclasses.replace(launcher, scratch=scratch, children=[])

    def idle() -> None:
        server = group.csms(workers)
        result.idle_group = scenarios.idle_memory(
            server, plan.idle_group_stations, plan.warm_stations, options, simulators=workers
        )
        per = result.idle_group.gateway_bytes("csms") / 1024
        print(f"  csms idle, {workers} workers: {per:.1f} KB per connection", file=sys.stderr)

    try:
        _attempt(result, f"idle {plan.idle_group_stations} with {workers} workers", idle)
    finally:
        group.stop_all()
        for data in ("nats", "csms"):
            shutil.rmtree(scratch / data, ignore_errors=True)


def _fill_path(options: scenarios.SimOptions) -> Path:
    return options.scratch / "page-cache-fill"


def _sustained(
    name: str,
    plan: Plan,
    server: Server,
    options: scenarios.SimOptions,
    progress: Progress,
    result: ServerResult,
    as_found: bool = False,
) -> None:
    """The sustained window. A storing server's runs twice (``Plan.fill_memory``): with
    ``as_found`` first of all its windows, on the memory as found, followed by the fill of the
    free memory with page cache; then, after the short windows (which so run on memory in use
    too), the window the bar reads."""
    stations = max(plan.throughput_stations)
    window = (
        f"{name}: {HEADLINE_VERSION} sustained, {plan.sustained_s:.0f} s after "
        f"{plan.sustained_warmup_s:.0f} s, {stations} stations"
    )

    def once() -> None:
        run = scenarios.throughput(
            server, stations, plan.sustained_s, plan.sustained_warmup_s, options
        )
        if as_found:
            result.sustained_as_found = run
        else:
            result.sustained = run
        what = "sustained, memory as found" if as_found else "sustained"
        print(f"  {name} {what}: {report.run_summary(run)}", file=sys.stderr)

    def fill() -> None:
        result.fill = host_memory.fill_page_cache(_fill_path(options))
        print(f"  page cache fill: {report.fill_summary(result.fill)}", file=sys.stderr)

    if as_found:
        progress.step(f"{window}, memory as found")
        _attempt(result, "sustained as found", once)
        ended = time.monotonic()
        _attempt(result, "page cache fill", fill)
        wait = plan.expiry_wait_s - (time.monotonic() - ended)
        if wait > 0:
            print(f"  waiting {wait:.0f} s: that window's Msg-Ids expire", file=sys.stderr)
            time.sleep(wait)
        return
    in_use = ", memory in use (filled page cache)" if _fills(plan, name) else ""
    progress.step(window + in_use)
    _attempt(result, "sustained", once)


def measure(
    name: str,
    plan: Plan,
    launcher: Launcher,
    options: scenarios.SimOptions,
    progress: Progress,
) -> ServerResult:
    result = ServerResult(name, report.LABELS[name])
    if _groups(plan, name):
        _idle_group(plan, launcher, options, progress, result)
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

        def full_speed(stations: int, version: str) -> None:
            run = scenarios.throughput(
                server, stations, plan.duration_s, plan.warmup_s, options, None, version
            )
            result.throughput.append(run)
            print(
                f"  {name} {version} {stations} stations: {report.run_summary(run)}",
                file=sys.stderr,
            )

        def half_rate() -> None:
            stations = plan.half_rate_stations
            rate = result.best_rate / 2 / stations
            run = scenarios.throughput(
                server, stations, plan.duration_s, plan.warmup_s, options, rate
            )
            result.half_rate = run
            print(f"  {name} half rate: {report.run_summary(run)}", file=sys.stderr)

        progress.step(f"{name}: idle memory, {plan.idle_stations:,} stations")
        _attempt(result, f"idle {plan.idle_stations}", idle)
        if _fills(plan, name):  # then every other window of it runs on memory in use
            _sustained(name, plan, server, options, progress, result, as_found=True)
        for version in plan.versions:
            for stations in plan.throughput_stations:
                progress.step(f"{name}: OCPP {version} throughput, {stations} stations")
                step = functools.partial(full_speed, stations, version)
                _attempt(result, f"throughput {version} {stations}", step)
        if plan.sustained_s > 0:
            _sustained(name, plan, server, options, progress, result)
        progress.step(f"{name}: latency at half its best {HEADLINE_VERSION} rate")
        if result.best_rate > 0:
            _attempt(result, "half rate", half_rate)
    finally:
        launcher.stop_all()
        _fill_path(options).unlink(missing_ok=True)
    return result


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="harness test: 10 stations, 1 s")
    size.add_argument("--quick", action="store_true", help="quick run: 50 stations, 3 s, N=200")
    size.add_argument("--full", action="store_true", help="idle memory at N=20,000")
    report.add_output_arguments(parser, "load")
    parser.add_argument(
        "--sched",
        choices=["fifo", "normal"],
        default="normal",
        help="normal (default): ordinary scheduling; fifo: servers and simulator at SCHED_FIFO 1 "
        "(needs root), so that other work on a shared machine does not decide the result; it "
        "starves that other work for the length of the run",
    )
    parser.add_argument(
        "--nats-cpu",
        type=int,
        choices=[SERVER_CPU, SIM_CPU],
        default=SIM_CPU,
        help=f"CPU of csms's nats-server: {SIM_CPU} (default, the bar's reading: ADR 0007, "
        "session 11) beside the simulator, the gateway alone on CPU 0 as the echo and the "
        f"reference are (NATS on machines of its own); {SERVER_CPU}: with the servers, so "
        "CPU 0 carries our whole system (reported beside it)",
    )
    parser.add_argument(
        "--sustained",
        type=float,
        metavar="WARMUP_S",
        help=f"run the sustained {HEADLINE_VERSION} window ({SUSTAINED_S:.0f} s) after this many "
        f"seconds at full speed (--full: {SUSTAINED_WARMUP_S:.0f}; 0: none)",
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument(
        "--versions",
        default=",".join(VERSIONS),
        help=f"OCPP versions of the throughput rows (the bar reads {HEADLINE_VERSION})",
    )
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


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if report.render_only(args, readme.SECTION):
        return 0
    size = "smoke" if args.smoke else "quick" if args.quick else "full" if args.full else "default"
    versions = [v for v in VERSIONS if v in args.versions.split(",")]
    if HEADLINE_VERSION not in versions:
        versions.insert(0, HEADLINE_VERSION)
    plan = _fit(msgspec.structs.replace(plans()[size], versions=versions))
    if args.sustained is not None:
        window = SUSTAINED_S if args.sustained > 0 else 0.0
        plan = msgspec.structs.replace(plan, sustained_warmup_s=args.sustained, sustained_s=window)
    realtime = args.sched == "fifo"
    os.sched_setaffinity(0, {SIM_CPU})  # keep the runner off the servers' core
    run = Run(
        started=report.utc_now(),
        command=_command(argv),
        plan=plan,
        environment=environment(realtime),
        servers=[],
        nats_cpu=args.nats_cpu,
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    nofile = plan.idle_stations + plan.warm_stations + FD_HEADROOM
    launcher = Launcher(scratch, realtime, nofile, nats_cpu=args.nats_cpu)
    options = scenarios.SimOptions(
        realtime, scratch, 0.2 if size == "smoke" else scenarios.SETTLE_S
    )
    names = args.servers.split(",")
    progress = Progress(sum(steps(plan, name) for name in names))
    try:
        run.servers.extend(measure(name, plan, launcher, options, progress) for name in names)
    finally:
        launcher.stop_all()
        for data in ("nats", "csms"):  # the stored events; logs stay until the run succeeded
            shutil.rmtree(scratch / data, ignore_errors=True)
    report.clean_scratch(scratch, any(r.failures for r in run.servers))
    report.finish_run(run, args, readme.SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
