"""PNG plots of the last benchmark runs: ``python -m bench.plots`` (or ``csms bench plots``).

Reads whatever of ``bench/results/{load,steady,burst,boot_storm,lag}.json`` exists, writes
``bench/results/*.png`` (matplotlib, Agg backend, no display) and the ``plots`` section of
``bench/README.md`` that links them. Each plot states the run date and the machine from its
JSON. A missing results file is skipped; one that cannot be plotted is reported on stderr and
skipped, never fatal (the runners call :func:`render_safely` after each run).

    python -m bench.plots [--results DIR] [--readme PATH] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.sections import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- plots:begin -->", "<!-- plots:end -->"
COLORS = {"csms": "tab:blue", "reference": "tab:orange", "echo": "tab:green"}
SERVERS = ("csms", "reference", "echo")

Json = dict[str, Any]


def _load(results: Path, name: str) -> Json | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data: Json = json.loads(path.read_text())
    return data


def stamp(data: Json) -> str:
    """'run <date>; <cpu>, <cores> cores, Linux <kernel>' from a results JSON."""
    env: Json = data.get("environment", {})
    date = str(data.get("started", "?"))
    cpu, cores, kernel = env.get("cpu", "?"), env.get("cores", "?"), env.get("kernel", "?")
    return f"run {date}; {cpu}, {cores} cores, Linux {kernel}"


def _figure(title: str, data: Json, columns: int = 1) -> tuple[Figure, Any]:
    fig, axes = plt.subplots(1, columns, figsize=(max(6.0 * columns, 8.5), 4.8), squeeze=False)
    fig.suptitle(f"{title}\n{stamp(data)}", fontsize=10)
    return fig, axes[0]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _color(name: str) -> str:
    return COLORS.get(name, "tab:gray")


LINES = {"1.6": "o-", "2.0.1": "^--", "2.1": "v:"}
"""Line style per OCPP version of the load plot (1.6 MeterValues: the headline)."""


def plot_load(data: Json, out: Path) -> Path:
    """Answered calls/s and p99 latency versus connected stations, per server and OCPP version
    (load.json; runs before versions were measured are 1.6)."""
    fig, (rate_ax, p99_ax) = _figure("bench.load: meter values throughput and p99 latency", data, 2)
    for server in data.get("servers", []):
        name = server["name"]
        runs = server.get("throughput", [])
        for version in sorted({t.get("version", "1.6") for t in runs}):
            points = sorted(
                (t["stations"], t["answered_per_s"], t["latency"]["p99"])
                for t in runs
                if t.get("version", "1.6") == version
            )
            xs = [p[0] for p in points]
            style, label = LINES.get(version, "o-"), f"{name} {version}"
            rate_ax.plot(xs, [p[1] for p in points], style, color=_color(name), label=label)
            p99_ax.plot(
                xs, [p[2] for p in points], style, color=_color(name), label=f"{label} (max)"
            )
        half = server.get("half_rate")
        if half:
            p99_ax.plot(
                [half["stations"]],
                [half["latency"]["p99"]],
                "s",
                mfc="none",
                color=_color(name),
                label=f"{name} 1.6 (half rate)",
            )
    rate_ax.set(xlabel="connected stations", ylabel="answered calls/s", yscale="log")
    rate_ax.set_title(
        "sustained answered meter values/s (1.6 MeterValues, 2.x TransactionEvent)", fontsize=9
    )
    p99_ax.set(xlabel="connected stations", ylabel="p99 latency, ms", yscale="log")
    p99_ax.axhline(20, color="red", lw=0.8, ls="--", label="bar: 20 ms at half rate")
    p99_ax.set_title("p99 answer latency", fontsize=9)
    for ax in (rate_ax, p99_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out / "load_throughput_latency.png")


def plot_steady(data: Json, out: Path, scenario: str = "steady") -> Path:
    """Answered calls/s, p99 latency and server CPU per server at N stations (steady/burst)."""
    stations = data.get("stations", 0)
    fig, (rate_ax, p99_ax, cpu_ax) = _figure(
        f"bench.load.{scenario}: {stations:,} stations", data, 3
    )
    names: list[str] = []
    rates: list[float] = []
    p99s: list[float] = []
    cpus: list[float] = []
    for run in data.get("runs", []):
        result = run.get("result")
        if not result:
            continue
        names.append(run["server"])
        rates.append(result["answered_per_s"])
        p99s.append(result["latency"]["p99"])
        cpus.append(100 * sum(result.get("server_cpu", {}).values()))
    colors = [_color(n) for n in names]
    rate_ax.bar(names, rates, color=colors)
    rate_ax.set(ylabel="answered calls/s", title="answered calls/s")
    p99_ax.bar(names, p99s, color=colors)
    p99_ax.set(ylabel="p99 latency, ms", title="p99 answer latency")
    cpu_ax.bar(names, cpus, color=colors)
    cpu_ax.set(ylabel="server CPU, % of one core", title="server CPU (incl. nats-server)")
    for ax in (rate_ax, p99_ax, cpu_ax):
        ax.title.set_fontsize(9)
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out / f"{scenario}.png")


def memory_points(load: Json | None, steady: Json | None) -> list[tuple[str, str, float]]:
    """(source, server, KB per connection): idle connections of load.json (server process
    alone, as its table), charging stations of steady.json (all the server's processes)."""
    points: list[tuple[str, str, float]] = []
    if load:
        for server in load.get("servers", []):
            idle = server.get("idle")
            if not idle or not idle.get("connected"):
                continue
            name = server["name"]
            delta = idle["rss_after_kb"][name] - idle["rss_before_kb"][name]
            points.append((f"idle, {idle['connected']:,} conn.", name, delta / idle["connected"]))
    if steady:
        for run in steady.get("runs", []):
            result = run.get("result")
            if not result or not result["boot"]["connected"]:
                continue
            grown = sum(result["server_rss_kb"].values()) - sum(run["rss_idle_kb"].values())
            connected = result["boot"]["connected"]
            points.append((f"steady, {connected:,} stations", run["server"], grown / connected))
    return points


def plot_memory(load: Json | None, steady: Json | None, out: Path) -> Path:
    """Server RSS growth per connection, grouped by source run, one bar per server."""
    points = memory_points(load, steady)
    fig, (ax,) = _figure("Server memory (RSS growth) per station connection", load or steady or {})
    sources = list(dict.fromkeys(p[0] for p in points))
    width = 0.8 / len(SERVERS)
    for i, name in enumerate(SERVERS):
        values = {p[0]: p[2] for p in points if p[1] == name}
        xs = [j + (i - 1) * width for j, s in enumerate(sources) if s in values]
        ys = [values[s] for s in sources if s in values]
        bars = ax.bar(xs, ys, width, color=_color(name), label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.axhline(16, color="red", lw=0.8, ls="--", label="bar: 16 KB (idle, 20,000)")
    ax.set_xticks(range(len(sources)), sources, fontsize=8)
    ax.set(ylabel="KB per connection")
    ax.set_ylim(0, max([16.0, *(p[2] for p in points)]) * 1.35)
    if steady and load and steady.get("started") != load.get("started"):
        ax.set_title(f"steady: {stamp(steady)}", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncols=4)
    return _save(fig, out / "memory_per_connection.png")


def plot_boot_storm(data: Json, out: Path) -> Path:
    """Seconds until all stations were Accepted, per server and transport/handshake cap."""
    stations = data.get("stations", 0)
    fig, (ax,) = _figure(f"bench.load.boot_storm: {stations:,} stations booting at once", data)

    def group(run: Json) -> str:
        return f"{run.get('transport', 'ws')}://, cap {run.get('concurrency') or 'none'}"

    groups = list(dict.fromkeys(group(r) for r in data.get("runs", [])))
    width = 0.8 / len(SERVERS)
    for i, name in enumerate(SERVERS):
        xs: list[float] = []
        ys: list[float] = []
        labels: list[str] = []
        for run in data.get("runs", []):
            if run["server"] != name or not run.get("result"):
                continue
            boot = run["result"]["boot"]
            done = boot.get("all_accepted_s")
            xs.append(groups.index(group(run)) + (i - 1) * width)
            if done is None:  # not all Accepted within the run: its length, marked
                ys.append(run["result"]["duration_s"])
                labels.append(f">{ys[-1]:.0f}\n{boot['accepted']:,} ok")
            else:
                ys.append(done)
                labels.append(f"{done:.1f}")
        bars = ax.bar(xs, ys, width, color=_color(name), label=name)
        ax.bar_label(bars, labels, fontsize=7)
    ax.axhline(10, color="red", lw=0.8, ls="--", label="bar: 10 s on ws://")
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set(ylabel="seconds until all Accepted")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncols=4)
    return _save(fig, out / "boot_storm.png")


def plot_lag(data: Json, out: Path) -> Path:
    """End-to-end lag (station send to row visible in ClickHouse) percentiles per rate."""
    fig, (ax,) = _figure("end-to-end lag: station send until the row is in ClickHouse", data)
    rows = data.get("rows", [])
    rates = [r["rate"] for r in rows]
    for key, style in (("p50", "o-"), ("p99", "s-"), ("max", "^--")):
        ax.plot(rates, [r["lag_ms"][key] / 1000 for r in rows], style, label=key)
    ax.set(xlabel="MeterValues/s offered", ylabel="lag, s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out / "lag.png")


def render(results: Path = RESULTS, out: Path | None = None) -> list[Path]:
    """Every plot that the results in ``results`` allow; returns the PNGs written."""
    out = out or results
    out.mkdir(parents=True, exist_ok=True)
    load, steady = _load(results, "load"), _load(results, "steady")
    burst, storm, lag = _load(results, "burst"), _load(results, "boot_storm"), _load(results, "lag")
    jobs: list[tuple[str, Callable[[], Path]]] = []
    if load:
        jobs.append(("load", lambda: plot_load(load, out)))
    if steady:
        jobs.append(("steady", lambda: plot_steady(steady, out, "steady")))
    if load or steady:
        jobs.append(("memory", lambda: plot_memory(load, steady, out)))
    if burst:
        jobs.append(("burst", lambda: plot_steady(burst, out, "burst")))
    if storm:
        jobs.append(("boot_storm", lambda: plot_boot_storm(storm, out)))
    if lag:
        jobs.append(("lag", lambda: plot_lag(lag, out)))
    written: list[Path] = []
    for name, job in jobs:
        try:
            written.append(job())
        except Exception as exc:  # noqa: BLE001  one malformed results file must not stop the others
            print(f"plots: {name} skipped: {exc!r}", file=sys.stderr)
    return written


CAPTIONS = {
    "load_throughput_latency.png": "Throughput and p99 latency versus connected stations "
    "(`bench.load`; hollow squares: p99 at half the maximum rate)",
    "steady.png": "Steady scenario: answered calls/s, p99 latency and server CPU per server",
    "memory_per_connection.png": "Server RSS growth per connection: idle connections "
    "(`bench.load`, server process) and charging stations (`bench.load.steady`, with nats-server)",
    "burst.png": "Clock-aligned burst: answered calls/s, p99 latency and server CPU per server",
    "boot_storm.png": "Boot storm: seconds until all stations were Accepted",
    "lag.png": "End-to-end lag: station send until the row is visible in ClickHouse",
}
SOURCES = {
    "load_throughput_latency.png": "load",
    "steady.png": "steady",
    "memory_per_connection.png": "load",
    "burst.png": "burst",
    "boot_storm.png": "boot_storm",
    "lag.png": "lag",
}


def section(pngs: Sequence[Path], results: Path, readme: Path) -> str:
    lines = [
        BEGIN,
        "## Plots",
        "",
        "Rendered by `.venv/bin/python -m bench.plots` (also at the end of each runner) from "
        "`bench/results/*.json`; each plot's title names its run date and machine.",
        "",
    ]
    for png in pngs:
        data = _load(results, SOURCES.get(png.name, png.stem)) or {}
        rel = os.path.relpath(png, readme.parent)
        caption = CAPTIONS.get(png.name, png.stem)
        lines += [f"**{caption}** ({stamp(data)})", "", f"![{png.stem}]({rel})", ""]
    lines.append(END)
    return "\n".join(lines)


def render_safely(results: Path = RESULTS, readme: Path | None = README) -> None:
    """For the runners: render the plots (and their README section); log any failure."""
    try:
        pngs = render(results)
        if readme is not None and pngs:
            write_section(readme, BEGIN, END, section(pngs, results, readme))
        print(f"plots: wrote {', '.join(p.name for p in pngs) or 'nothing'}", file=sys.stderr)
    except Exception:  # noqa: BLE001  a plot must never fail a benchmark
        print("plots: rendering failed (the benchmark's results stand):", file=sys.stderr)
        traceback.print_exc()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plots")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    pngs = render(args.results)
    for png in pngs:
        print(png)
    if not args.no_readme and pngs:
        write_section(args.readme, BEGIN, END, section(pngs, args.results, args.readme))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
