"""Where csms spends its time under the throughput load: ``csms bench profile``.

    .venv/bin/python -m bench.load.profile [--version 1.6] [--stations 200] [--duration 10]
        [--warmup 2] [--top 20] [--passes plain,cprofile,perf] [--json OUT] [--no-readme]

The gateway (with its nats-server, both pinned to CPU 0) under the load benchmark's throughput
scenario (``bench.fleet.throughput``, pinned to CPU 1), three times:

- ``plain``: not profiled, the rate to compare the profiled ones with (their overhead);
- ``cprofile``: the csms process under cProfile (``bench.load.cprofiled``), switched on only
  while the simulator runs (SIGUSR1/SIGUSR2): Python functions with self and cumulative time;
- ``perf``: csms and nats-server each under ``perf record -g`` (user space, cpu-clock at 499 Hz,
  enabled only while the simulator runs): native time by process and shared object (libpython,
  the Rust extension, picows, uvloop, nats-server, libc) and the hottest symbols. Python 3.11
  has no ``-X perf``, so Python frames show as interpreter functions; cProfile names them.

Writes ``bench/results/profile.json`` and the profile section of ``bench/README.md``, right after
the load section whose unmet bars it explains.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bench.load import report, scenarios
from bench.load.environment import environment
from bench.load.model import Report
from bench.load.progress import Progress
from bench.load.servers import ROOT, SERVER_CPU, SIM_CPU, Child, Launcher, Server

PERF_HZ = 499
PASSES = ("plain", "cprofile", "perf")
FD_HEADROOM = 256
SITE = re.compile(r".*/site-packages/")


class Row(msgspec.Struct, frozen=True):
    what: str
    self_pct: float
    cumulative_pct: float | None = None
    calls: int | None = None


class Pass(msgspec.Struct):
    tool: str
    answered_per_s: float = 0.0
    rows: list[Row] = msgspec.field(default_factory=list)
    """cProfile: functions by self time; perf: symbols by self samples."""
    by_object: list[Row] = msgspec.field(default_factory=list)
    """perf: samples by process and shared object."""
    samples: int = 0
    failure: str = ""


class ProfileReport(Report):
    version: str
    stations: int
    duration_s: float
    passes: list[Pass]


@dataclass
class ProfilingLauncher(Launcher):
    """Starts csms (and its nats-server) under a profiler: ``tool`` cprofile or perf."""

    tool: str = "plain"
    out: Path = Path()

    def launch(
        self,
        name: str,
        argv: list[str],
        ready: str,
        cpu: int = SERVER_CPU,
        env: dict[str, str] | None = None,
    ) -> Child:
        if self.tool == "cprofile" and name == "csms":  # argv: python -m csms serve ...
            argv = [argv[0], "-m", "bench.load.cprofiled", str(self.out / "csms.pstats"), *argv[2:]]
        elif self.tool == "perf":
            fifo = self.out / f"perf-{name}.ctl"
            os.mkfifo(fifo)
            argv = [
                *("perf", "record", "-e", "cpu-clock:u", "-g", "-F", str(PERF_HZ), "-D", "-1"),
                *("--control", f"fifo:{fifo}", "-o", str(self.out / f"perf-{name}.data"), "--"),
                *argv,
            ]
        return super().launch(name, argv, ready, cpu, env)

    def switch(self, server: Server, on: bool) -> None:
        """Profile from now on (``on``) or no longer."""
        if self.tool == "cprofile":
            os.kill(server.pids["csms"], signal.SIGUSR1 if on else signal.SIGUSR2)
        elif self.tool == "perf":
            for fifo in self.out.glob("perf-*.ctl"):
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(fd, b"enable\n" if on else b"disable\n")
                finally:
                    os.close(fd)


def _label(key: tuple[str, int, str]) -> str:
    path, line, name = key
    if path == "~":
        return name
    for base in (str(ROOT) + "/", sys.prefix + "/lib/"):
        path = path.removeprefix(base)
    return f"{SITE.sub('', path)}:{line} {name}"


def cprofile_rows(path: Path, top: int) -> list[Row]:
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [
        Row(_label(key), round(100 * tt / total, 1), round(100 * ct / total, 1), nc)
        for key, (_cc, nc, tt, ct, _callers) in ranked
    ]


def perf_rows(data: list[Path], sort: str, top: int) -> tuple[list[Row], int]:
    """``perf report`` over the recordings, self samples by ``sort`` keys (all files together)."""
    counts: dict[str, float] = {}
    for path in data:
        done = subprocess.run(
            [
                *("perf", "report", "-i", str(path), "--no-children", "-g", "none"),
                *("--sort", sort, "--stdio", "-F", f"sample,{sort}", "--percent-limit", "0"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in done.stdout.splitlines():
            fields = line.split(None, 1)
            if len(fields) == 2 and fields[0].isdigit():
                key = " ".join(fields[1].replace("[.] ", "").split())
                counts[key] = counts.get(key, 0) + int(fields[0])
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
    rows = [Row(key, round(100 * n / total, 1) if total else 0.0) for key, n in ranked]
    return rows, int(total)


def one_pass(tool: str, args: argparse.Namespace, scratch: Path) -> Pass:
    result = Pass(tool)
    out = scratch / tool
    out.mkdir()
    nofile = args.stations + FD_HEADROOM
    launcher = ProfilingLauncher(scratch, False, nofile, tool=tool, out=out)
    options = scenarios.SimOptions(False, scratch)
    try:
        server = launcher.start("csms")
        launcher.switch(server, True)
        run = scenarios.throughput(
            server, args.stations, args.duration, args.warmup, options, None, args.version
        )
        launcher.switch(server, False)
        result.answered_per_s = run.answered_per_s
        print(f"  {tool}: {report.run_summary(run)}", file=sys.stderr)
    except (RuntimeError, OSError, subprocess.SubprocessError, msgspec.DecodeError) as err:
        result.failure = f"{type(err).__name__}: {err}"
    finally:
        launcher.stop_all()
        for data in ("nats", "csms"):
            shutil.rmtree(scratch / data, ignore_errors=True)
    with contextlib.suppress(OSError, ValueError, EOFError):  # no profile: the failure says why
        if tool == "cprofile":
            result.rows = cprofile_rows(out / "csms.pstats", args.top)
        elif tool == "perf":
            recordings = sorted(out.glob("perf-*.data"))
            result.by_object, result.samples = perf_rows(recordings, "comm,dso", args.top)
            result.rows, _ = perf_rows(recordings, "comm,dso,sym", args.top)
    return result


def _table(rows: list[Row], what: str, cumulative: bool) -> list[str]:
    if cumulative:
        lines = [f"| {what} | self % | cumulative % | calls |", "|---|--:|--:|--:|"]
        lines += [
            f"| `{r.what}` | {r.self_pct:.1f} | {r.cumulative_pct or 0:.1f} | {r.calls or 0:,} |"
            for r in rows
        ]
        return lines
    lines = [f"| {what} | self % |", "|---|--:|"]
    return lines + [f"| `{r.what}` | {r.self_pct:.1f} |" for r in rows]


def render(profile: ProfileReport) -> str:
    env = profile.environment
    begin, finish = SECTION.markers
    plain = next((p.answered_per_s for p in profile.passes if p.tool == "plain"), 0.0)
    lines = [
        begin,
        "## Profile: where csms spends its time under the throughput load",
        "",
        f"- **Date**: {profile.started} to {profile.finished}; **command**: `{profile.command}`",
        *report.machine_lines(env),
        f"- **Load**: the throughput scenario, OCPP {profile.version}, {profile.stations} "
        f"stations, {profile.duration_s:g} s measured (as in the load section). Profiles cover the "
        "simulator's whole run (connect, boot, warm-up, window); cProfile sees only the csms "
        "process's main thread (the event loop), perf sees every thread of csms and "
        "nats-server in user space (no kernel time: `perf_event_paranoid` 2).",
        "- **Overhead**: answered/s "
        + ", ".join(
            f"{p.tool} {p.answered_per_s:,.0f}"
            + (f" ({p.answered_per_s / plain:.0%} of plain)" if plain and p.tool != "plain" else "")
            for p in profile.passes
        )
        + " (a profiler's overhead shows in its rate only on a quiet machine: on a shared one the "
        "passes' rates differ by more than that; the shares below are what to read).",
    ]
    for p in profile.passes:
        if p.failure:
            lines += ["", f"**{p.tool} failed**: {p.failure}"]
        if p.tool == "cprofile" and p.rows:
            lines += ["", "### cProfile: csms, Python functions by self time", ""]
            lines += _table(p.rows, "function", True)
            lines += [
                "",
                "Self and cumulative % of the time cProfile saw: inside the event loop's "
                "callbacks (the loop's own work between them, polling and picows's frame "
                "parsing, is not seen: perf below shows it). C functions called from Python "
                "(the Rust codec, msgspec, picows sends) are rows of their own.",
            ]
        if p.tool == "perf" and p.rows:
            lines += ["", f"### perf: native time ({p.samples:,} samples), by process and object"]
            lines += ["", *_table(p.by_object, "process, shared object", False)]
            lines += ["", "Hottest symbols:", "", *_table(p.rows, "process, object, symbol", False)]
    return "\n".join([*lines, finish])


SECTION = report.Section("profile", render, ProfileReport, str, report.END)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.profile", description=__doc__)
    parser.add_argument("--version", default="1.6", choices=["1.6", "2.0.1", "2.1"])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--passes", default=",".join(PASSES))
    report.add_output_arguments(parser, "profile")
    args = parser.parse_args(argv)
    if report.render_only(args, SECTION):
        return 0
    if "perf" in args.passes and shutil.which("perf") is None:
        print("perf is not installed: the perf pass is left out", file=sys.stderr)
        args.passes = args.passes.replace("perf", "")
    os.sched_setaffinity(0, {SIM_CPU})
    result = ProfileReport(
        started=report.utc_now(),
        command=report.command("bench.load.profile", argv),
        environment=environment(False),
        version=args.version,
        stations=args.stations,
        duration_s=args.duration,
        passes=[],
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    tools = [t for t in PASSES if t in args.passes.split(",")]
    progress = Progress(len(tools))
    for tool in tools:
        progress.step(f"csms under {tool}: OCPP {args.version}, {args.stations} stations")
        result.passes.append(one_pass(tool, args, scratch))
    report.clean_scratch(scratch, any(p.failure for p in result.passes))
    report.finish_run(result, args, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
