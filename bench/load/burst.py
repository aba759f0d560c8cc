"""Clock-aligned burst: every charging station sends its Sample.Clock meter values in the same
second, against csms, the ocpp-package reference and the echo ceiling, in one run.

    .venv/bin/python -m bench.load.burst [--stations 2000] [--duration 30]
        [--servers csms,reference,echo] [--json OUT] [--no-readme] [--render JSON]

Per server: a fresh server pinned to CPU 0 (csms with its own nats-server, also on CPU 0) and the
fleet simulator (``bench.fleet``, scenario ``clock-aligned-burst``, OCPP 1.6, free vending)
pinned to CPU 1: every station boots and starts a transaction, then at each multiple of 15 s UTC
all of them send MeterValues (10 sampled values) at once. Per burst: time from the boundary until
the last answer.
"""

from __future__ import annotations

import statistics
import sys

from bench.load import report
from bench.load.steady import SteadyReport, SteadyRun, failures, run_scenario

WARMUP_S = 5.0


def main(argv: list[str]) -> int:
    return run_scenario(argv, "bench.load.burst", "clock-aligned-burst", WARMUP_S, 2_000, SECTION)


def _bursts(run: SteadyRun) -> str:
    if run.result is None or not run.result.bursts:
        return "—"
    return ", ".join(
        f"{b.all_answered_s:.2f} s ({b.answered:,}/{b.sent:,})" for b in run.result.bursts
    )


def _median_burst_s(run: SteadyRun) -> float | None:
    bursts = [b.all_answered_s for b in run.result.bursts] if run.result else []
    return statistics.median(bursts) if bursts else None


def _summary(run: SteadyRun) -> str:
    if run.result is None:
        return f"FAILED {run.failure}"
    return f"bursts {_bursts(run)}; p99 {run.result.latency.p99} ms"


def render(burst_report: SteadyReport) -> str:
    env = burst_report.environment
    begin, end = SECTION.markers
    lines = [
        begin,
        "## Clock-aligned burst: every station's meter values in the same second",
        "",
        f"- **Date**: {burst_report.started} to {burst_report.finished}; **command**: "
        f"`{burst_report.command}`",
        *report.machine_lines(env),
        "- **Setup**: a fresh server per row pinned to CPU 0 (csms with its own nats-server, "
        "also on CPU 0, `projections = false`); the fleet simulator (`bench/fleet`, scenario "
        "`bench/scenarios/clock-aligned-burst.toml`, OCPP 1.6, free vending) pinned to CPU 1: "
        f"{burst_report.stations:,} stations boot and start a transaction (spread over 20 s: "
        "csms answers a StartTransaction storm slowly, see the notes); once all are "
        f"charging, {WARMUP_S:g} s warm-up, then {burst_report.duration_s:g} s measured, with "
        "every station sending MeterValues (Sample.Clock, 10 sampled values) at each multiple "
        "of 15 s UTC, one CALL outstanding each. *Burst* = from the boundary until the last "
        "of them was answered (answered/sent); latency over every CALL of the window.",
        "",
        "| server | bursts: all answered after | median burst s | p50 ms | p99 ms | max ms "
        "| errors | server CPU | sim CPU |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|",
    ]
    for run in burst_report.runs:
        if run.result is None:
            lines.append(f"| {run.server} | {run.failure} | — | — | — | — | — | — | — |")
            continue
        r = run.result
        failed = failures(r)
        median = _median_burst_s(run)
        lines.append(
            f"| {run.server} | {_bursts(run)} | {'—' if median is None else f'{median:.2f}'} "
            f"| {r.latency.p50} | {r.latency.p99} | {r.latency.max} | {failed} "
            f"| {sum(r.server_cpu.values()):.0%} | {r.sim_cpu:.0%} |"
        )
    done = [run for run in burst_report.runs if run.result is not None]
    lines += [
        "",
        report.ratios("Median burst", {r.server: _median_burst_s(r) for r in done}, " s"),
        report.ratios(
            "p99 latency",
            {r.server: r.result.latency.p99 for r in done if r.result is not None},
            " ms",
        ),
        "",
        f"Servers: {'; '.join(report.LABELS.values())}.",
        "",
        "The echo's burst time is also the floor set by the simulator (one core sends and "
        "reads every frame of the burst): a server as fast as the echo here is not what limits "
        "its row.",
        "",
        "Note, StartTransaction storms: csms allocates 1.6 transaction ids from a "
        "compare-and-set counter in a JetStream KV bucket (`streams/transaction_ids.py`). "
        "With one compare-and-set per start, 1,000 stations starting at once (a separate run "
        "of `bench.fleet`, 2026-11-21) got about 35 answers/s and 133 ran into the 30 s call "
        "timeout. Since each process reserves blocks of 100 ids, the same storm (2026-11-22, "
        "`csms simulate --stations 1000 --scenario clock-aligned-burst --set start_spread_s=0`, "
        "csms on CPU 0, the simulator on CPU 1) had all 1,000 answered within 1.12 s of the "
        "first (893/s, from the events' receive times), none timed out. The starts are spread "
        "here so that this table measures the clock-aligned burst.",
        end,
    ]
    return "\n".join(lines)


SECTION = report.Section("burst", render, SteadyReport, _summary)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
