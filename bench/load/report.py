"""The end of every benchmark run (``finish_run``: JSON, README section, plots), and the load
run's tables for the ``<!-- load:begin -->`` section of bench/README.md."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bench.load.environment import load_average
from bench.load.host_memory import GIB
from bench.load.model import (
    HEADLINE_VERSION,
    Fill,
    IdleResult,
    Report,
    Run,
    ServerResult,
    SimResult,
)
from bench.load.servers import SIM_CPU
from bench.plots import render_safely
from bench.sections import write_section

ROOT = Path(__file__).resolve().parents[2]

BEGIN, END = "<!-- load:begin -->", "<!-- load:end -->"
X = "\N{MULTIPLICATION SIGN}"
LABELS = {
    "csms": "csms (ours): picows gateway, Rust codec, every frame stored in JetStream first",
    "reference": "reference: `ocpp` package `ChargePoint` over `websockets`, asyncio, jsonschema",
    "echo": "echo: bare picows + uvloop, canned `[3,id,{}]`, no parsing (the ceiling)",
}
BAR_RATIO_REFERENCE = 30.0
BAR_SHARE_ECHO = 0.40
BAR_BYTES_PER_CONNECTION = 16 * 1024
BAR_CONNECTIONS = 20_000
BAR_P99_MS = 20.0
SIM_BOUND = 0.9
"""A simulator busier than this on its core may be what limits the rate it measures."""


@dataclass(frozen=True, slots=True)
class Section:
    """A runner's section of bench/README.md: its name and how a result is rendered into it."""

    name: str
    render: Callable[[Any], str]
    kind: type[Any]
    """The result's struct type (to decode a saved JSON for ``--render``)."""
    summary: Callable[[Any], str] = str
    """One line about one row, for the progress display."""
    after: str = ""
    """A new section goes right after this marker (else at the end of the README)."""

    @property
    def markers(self) -> tuple[str, str]:
        return f"<!-- {self.name}:begin -->", f"<!-- {self.name}:end -->"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def command(module: str, argv: list[str]) -> str:
    return shlex.join([".venv/bin/python", "-m", module, *argv])


def add_output_arguments(parser: argparse.ArgumentParser, json_name: str) -> None:
    """--json, --readme, --no-readme, --render: where a runner writes its result."""
    results = ROOT / "bench" / "results"
    parser.add_argument("--json", type=Path, default=results / f"{json_name}.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "bench" / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument("--render", type=Path, help="only rewrite the section from this JSON")


def render_only(args: argparse.Namespace, section: Section) -> bool:
    """With ``--render JSON``: rewrite the section from a saved result (True: done)."""
    if args.render is None:
        return False
    saved = msgspec.json.decode(args.render.read_bytes(), type=section.kind)
    write_section(args.readme, *section.markers, section.render(saved), after=section.after)
    return True


def clean_scratch(scratch: Path, failed: bool) -> None:
    """Remove the run's scratch directory, unless something failed (its logs then stay)."""
    if failed:
        print(f"logs kept in {scratch}", file=sys.stderr)
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def finish_run(result: Report, args: argparse.Namespace, section: Section) -> None:
    """The end of every run: the load average at the end, the JSON, the README section (unless
    ``--no-readme``), the plots."""
    result.environment["load_average_end"] = load_average()
    result.finished = utc_now()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    print(f"wrote {args.json}", file=sys.stderr)
    if not args.no_readme:
        write_section(args.readme, *section.markers, section.render(result), after=section.after)
        print(f"rewrote the {section.name} section of {args.readme}", file=sys.stderr)
    render_safely(args.json.parent, None if args.no_readme else args.readme)


VERSION_KEYS = (
    *("csms._core", "rust", "picows", "uvloop", "websockets", "ocpp", "jsonschema"),
    *("nats-py", "msgspec", "nats-server"),
)


def machine_lines(env: dict[str, str]) -> list[str]:
    """The machine and the versions, as every report states them."""
    versions = ", ".join(f"{k} {env.get(k, '?')}" for k in VERSION_KEYS)
    if env.get("nats-server Go runtime"):
        versions += f" ({env['nats-server Go runtime']})"
    return [
        f"- **Machine**: {env['cpu']}, {env['cores']} cores shared with other work, Linux "
        f"{env['kernel']}; load average {env['load_average_start']} at start, "
        f"{env.get('load_average_end', '?')} at end",
        f"- **Versions**: {env['python']}, {versions}",
    ]


def ratios(what: str, values: dict[str, float | None], unit: str = "") -> str:
    """``what``: csms's value beside each reference's, and csms / reference, in one line."""
    ours = values.get("csms")
    shown = ", ".join(
        f"{name} {_num(value)}{unit}" for name, value in values.items() if value is not None
    )
    parts = [
        f"csms / {name} {_ratio(ours, value)}"
        for name, value in values.items()
        if name != "csms" and ours is not None and value
    ]
    return f"{what}: {shown}" + (f"; {', '.join(parts)}" if parts else "") + "."


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.2f}{X}" if b else "—"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def errors(run: SimResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(run.errors.items())) or "0"


def server_cpu(run: SimResult) -> float:
    return sum(run.server_cpu.values())


def _rss(run: SimResult) -> str:
    return " + ".join(f"{kb / 1024:.0f}" for kb in run.server_rss_kb.values()) or "—"


def run_summary(run: SimResult) -> str:
    return (
        f"{_n(run.answered_per_s)}/s, p50 {_ms(run.latency.p50)} ms, p99 {_ms(run.latency.p99)} ms"
        f", errors {errors(run)}, server CPU {_pct(server_cpu(run))}, sim CPU {_pct(run.sim_cpu)}"
        f" ({run.sim_us_per_call:.1f} µs/call)"
    )


def fill_summary(fill: Fill) -> str:
    return (
        f"{fill.bytes / GIB:.1f} GiB in {fill.seconds:.0f} s (MemFree before: "
        f"{fill.free_before / GIB:.1f} GiB; limited by {fill.limited_by})"
    )


def idle_summary(result: ServerResult) -> str:
    idle = result.idle
    if idle is None:
        return "—"
    parts = [
        f"{name} {idle.per_connection_bytes(name) / 1024:.1f} KB" for name in idle.rss_after_kb
    ]
    return f"{idle.connected}/{idle.stations} connected; per connection " + ", ".join(parts)


def _by_name(run: Run) -> dict[str, ServerResult]:
    return {s.name: s for s in run.servers}


def best(result: ServerResult | None, version: str = HEADLINE_VERSION) -> SimResult | None:
    runs = [r for r in result.throughput if r.version == version] if result else []
    return max(runs, key=lambda r: r.answered_per_s) if runs else None


def _placement(run: Run) -> str:
    """Where csms's nats-server ran: the bar's reading differs (ADR 0007, session 11)."""
    if run.nats_cpu == SIM_CPU:
        return ", nats-server on CPU 1 beside the simulator"
    return ", nats-server on CPU 0 with csms"


def bar(run: Run) -> list[str]:
    servers = _by_name(run)
    ours, ref, echo = (servers.get(n) for n in ("csms", "reference", "echo"))
    lines = ["| target | measured | met |", "|---|---|:-:|"]
    top = best(ours)
    if ours is None or top is None:
        return [*lines, "| all | csms was not measured | **no** |"]
    held = ours.sustained
    if held is not None:  # the bar reads what is sustained: each server's own sustained rate
        clean = "" if not held.errors else f" (errors: {errors(held)})"
        ours_rate = held.answered_per_s
        how = (
            f"sustained: {_n(ours_rate)}/s over {held.duration_s:.0f} s after "
            f"{run.plan.sustained_warmup_s:.0f} s at {held.stations} stations"
            + (", memory in use" if ours.fill else "")
            + _placement(run)
            + f" (best short window: {_n(top.answered_per_s)}/s)"
        )
        theirs = "sustained "
    else:
        clean = "" if not top.errors else f" (errors: {errors(top)})"
        ours_rate = top.answered_per_s
        how = f"{_n(ours_rate)}/s at {top.stations} stations"
        theirs = ""
    found = ours.sustained_as_found
    if ref is not None and ref.sustained_rate:
        ratio = ours_rate / ref.sustained_rate
        also = (
            f"; memory as found: {_n(found.answered_per_s)}/s = "
            f"{found.answered_per_s / ref.sustained_rate:.1f}{X}"
            if found is not None
            else ""
        )
        lines.append(
            f"| {HEADLINE_VERSION} MeterValues/s (validated, persisted, answered) ≥ "
            f"{BAR_RATIO_REFERENCE:.0f}{X} the reference | {how} = {ratio:.1f}{X} the "
            f"reference's {theirs if ref.sustained else ''}{_n(ref.sustained_rate)}/s{clean}"
            f"{also} | {_met(ratio >= BAR_RATIO_REFERENCE)} |"
        )
    if echo is not None and echo.sustained_rate:
        share = ours_rate / echo.sustained_rate
        also = (
            f"; memory as found: {_pct(found.answered_per_s / echo.sustained_rate)}"
            if found is not None
            else ""
        )
        lines.append(
            f"| MeterValues/s ≥ {_pct(BAR_SHARE_ECHO)} of the echo ceiling | {how} = "
            f"{_pct(share)} of the echo's {theirs if echo.sustained else ''}"
            f"{_n(echo.sustained_rate)}/s{clean}{also} | {_met(share >= BAR_SHARE_ECHO)} |"
        )
    if ours.idle is not None:
        lines.append(_idle_bar(ours.idle, ours.idle_group, run.plan.idle_group_workers))
    if ours.half_rate is not None:
        half = ours.half_rate
        lines.append(
            f"| p99 ≤ {BAR_P99_MS:.0f} ms at half the max rate | {_ms(half.latency.p99)} ms at "
            f"{_n(half.answered_per_s)}/s ({half.stations} stations) "
            f"| {_met(half.latency.p99 <= BAR_P99_MS)} |"
        )
    return lines


def _runs_table(
    rows: list[tuple[str, SimResult]], targets: dict[str, float] | None = None
) -> list[str]:
    target = "| target/s " if targets is not None else ""
    lines = [
        f"| server | OCPP | stations {target}| answered/s | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| max ms | errors | server CPU | CPU 0 others | sim CPU | sim µs/call "
        "| server RSS MB at end |",
        "|---|---|--:"
        + "|--:" * (targets is not None)
        + "|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|",
    ]
    for name, r in rows:
        others = max(0.0, r.cpu_busy.get("cpu0", 0.0) - server_cpu(r))
        sim = _pct(r.sim_cpu) + (" ⚠" if r.sim_cpu >= SIM_BOUND else "")
        lat = r.latency
        wanted = f"| {_n(targets.get(name, 0.0))} " if targets is not None else ""
        lines.append(
            f"| {name} | {r.version} | {r.stations} {wanted}| {_n(r.answered_per_s)} "
            f"| {_ms(lat.p50)} | {_ms(lat.p90)} | {_ms(lat.p99)} | {_ms(lat.p999)} "
            f"| {_ms(lat.max)} | {errors(r)} | {_pct(server_cpu(r))} | {_pct(others)} | {sim} "
            f"| {r.sim_us_per_call:.1f} | {_rss(r)} |"
        )
    return lines


def throughput_tables(run: Run) -> list[str]:
    """Per OCPP version (the headline first): answered/s of each server at each station count
    with the ratios, then every run's details."""
    servers = _by_name(run)
    lines = [
        "| OCPP | calls | stations | csms | reference | echo | csms / reference | csms / echo |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    rows: list[tuple[str, SimResult]] = []
    for version in run.plan.versions:
        action = "MeterValues" if version == "1.6" else "TransactionEvent"
        for stations in run.plan.throughput_stations:
            rate = {}
            for name, result in servers.items():
                for r in result.throughput:
                    if r.stations == stations and r.version == version:
                        rate[name] = r.answered_per_s
                        rows.append((name, r))
            cells = [_n(rate[n]) if n in rate else "—" for n in ("csms", "reference", "echo")]
            ours = rate.get("csms", 0.0)
            echo = rate.get("echo", 0.0)
            lines.append(
                f"| {version} | {action} | {stations} | {' | '.join(cells)} "
                f"| {_ratio(ours, rate.get('reference', 0.0))} "
                f"| {_pct(ours / echo) if echo else '—'} |"
            )
    order = {name: i for i, name in enumerate(LABELS)}
    versions = {v: i for i, v in enumerate(run.plan.versions)}
    rows.sort(
        key=lambda row: (versions.get(row[1].version, 9), row[1].stations, order.get(row[0], 9))
    )
    return [*lines, "", *_runs_table(rows)]


def sustained_table(run: Run) -> list[str]:
    """Each server's sustained run (a storing server's twice: memory as found, then in use),
    with its best short window beside it."""
    windows = [
        (s, memory, held)
        for s in run.servers
        for memory, held in (
            ("as found", s.sustained_as_found),
            ("in use" if s.fill else "as found", s.sustained),
        )
        if held is not None
    ]
    if not windows:
        return []
    lines = [
        "| server | memory | stations | warm-up s | window s | sustained answered/s "
        "| best short window /s | sustained / short |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    warmup = run.plan.sustained_warmup_s
    for s, memory, held in windows:
        short = s.max_rate
        lines.append(
            f"| {s.name} | {memory} | {held.stations} | {warmup:.0f} | {held.duration_s:.0f} "
            f"| {_n(held.answered_per_s)} | {_n(short)} "
            f"| {_pct(held.answered_per_s / short) if short else '—'} |"
        )
    fills = [f"{s.name}: {fill_summary(s.fill)}" for s in run.servers if s.fill is not None]
    if fills:
        lines += [
            "",
            "Page-cache fill before the *in use* window (`bench.load.host_memory`): "
            + "; ".join(fills)
            + ".",
        ]
    rows = [(f"{s.name} ({memory})" if s.fill else s.name, held) for s, memory, held in windows]
    return [*lines, "", *_runs_table(rows)]


def half_rate_table(run: Run) -> list[str]:
    rows = [(s.name, s.half_rate) for s in run.servers if s.half_rate is not None]
    lines = _runs_table(rows, {s.name: s.best_rate / 2 for s in run.servers})
    p99 = {name: r.latency.p99 for name, r in rows}
    if "csms" in p99:
        others = [f"{_ratio(p99['csms'], p99[n])} the {n}'s" for n in p99 if n != "csms"]
        lines += ["", "csms p99 / other p99: " + ", ".join(others) + "."]
    return lines


def _idle_bar(idle: IdleResult, group: IdleResult | None, workers: int) -> str:
    """The memory row of the bar: one gateway process at the N it could hold, and, where
    measured, a ``--workers`` group at the issue's 20,000."""
    per = idle.per_connection_bytes("csms")
    nats = idle.per_connection_bytes("nats-server")
    text = (
        f"{per / 1024:.1f} KB (csms process) at N = {idle.connected:,}; its nats-server: "
        f"{nats / 1024:+.1f} KB"
    )
    met = per <= BAR_BYTES_PER_CONNECTION
    at_n = idle.connected >= BAR_CONNECTIONS
    if group is not None:
        both = group.gateway_bytes("csms")
        text += (
            f"; {both / 1024:.1f} KB (the {workers} csms processes of `--workers {workers}`) "
            f"at N = {group.connected:,} of {group.stations:,}"
        )
        met = met and both <= BAR_BYTES_PER_CONNECTION
        at_n = at_n or group.connected >= BAR_CONNECTIONS
    verdict = _met(met) + ("" if at_n else " (at a smaller N)")
    return f"| memory per idle connection ≤ 16 KB at 20,000 | {text} | {verdict} |"


def idle_table(run: Run) -> list[str]:
    lines = [
        "| server | process | N connected | RSS before KB | RSS after KB | per connection KB |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for s in run.servers:
        workers = f"{s.name} (`--workers {run.plan.idle_group_workers}`)"
        for label, idle in ((s.name, s.idle), (workers, s.idle_group)):
            if idle is None:
                continue
            for name in idle.rss_after_kb:
                before, after = idle.rss_before_kb[name], idle.rss_after_kb[name]
                per = idle.per_connection_bytes(name) / 1024
                lines.append(
                    f"| {label} | {name} | {idle.connected:,} of {idle.stations:,} "
                    f"| {before:,} | {after:,} | {per:.1f} |"
                )
    return lines
