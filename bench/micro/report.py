"""The results of one run, rendered as Markdown into the marked section of bench/README.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.micro.environment import Environment, RustResult
from bench.micro.timing import Settings, Stats
from bench.sections import write_section

HEADLINE = "v16_meter_values_10"
"""The frame the targets of the issue are stated for (1.6 MeterValues, 10 sampled values)."""
BEGIN, END = "<!-- micro:begin -->", "<!-- micro:end -->"
X = "\N{MULTIPLICATION SIGN}"
_OURS = {"ours": "per frame", "ours_batch": "batched", "ours_payload": "+ `.payload`"}


@dataclass(frozen=True, slots=True)
class Measured:
    key: str
    label: str
    stats: Stats


@dataclass(frozen=True, slots=True)
class FrameResult:
    name: str
    version: str
    action: str
    size: int
    measured: list[Measured]

    def median(self, key: str) -> float:
        return next(m.stats.median_ns for m in self.measured if m.key == key)


@dataclass(frozen=True, slots=True)
class Run:
    started: str
    command: str
    settings: Settings
    environment: Environment
    load_average_end: tuple[float, float, float]
    frames: list[FrameResult]
    rust: list[RustResult]


def _us(ns: float) -> str:
    us = ns / 1000
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def _x(ratio: float) -> str:
    return f"{ratio:,.0f}{X}" if ratio >= 10 else f"{ratio:.2f}{X}"


def _fps(ns: float) -> str:
    return f"{1e9 / ns:,.0f}"


def _row(label: str, ns: float, min_ns: float | None, frame: FrameResult) -> str:
    low = "" if min_ns is None else _us(min_ns)
    ocpp, msgspec = frame.median("ocpp"), frame.median("msgspec")
    return f"| {label} | {_us(ns)} | {low} | {_fps(ns)} | {_x(ocpp / ns)} | {_x(msgspec / ns)} |"


def _frame_table(frame: FrameResult, rust: list[RustResult]) -> list[str]:
    lines = [
        f"### `{frame.name}`: OCPP {frame.version} {frame.action}, {frame.size:,} bytes",
        "",
        f"| candidate | median µs/frame | min µs/frame | frames/s | {X} vs ocpp package"
        f" | {X} vs msgspec |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    lines += [_row(m.label, m.stats.median_ns, m.stats.min_ns, frame) for m in frame.measured]
    lines += [_row(f"{r.label} †", r.median_ns, None, frame) for r in rust if r.frame == frame.name]
    return [*lines, ""]


def _targets(run: Run) -> list[str]:
    frame = next((f for f in run.frames if f.name == HEADLINE), None)
    if frame is None:
        return [f"Targets not evaluated: frame `{HEADLINE}` missing.", ""]
    lines = [
        f"### Targets of the issue (`{HEADLINE}`, per core)",
        "",
        "| target | measured | met |",
        "|---|---|:-:|",
    ]
    rust = next((r for r in run.rust if r.frame == HEADLINE and r.bench == "decode"), None)
    if rust is None:
        lines.append("| Rust ≥ 500,000 frames/s | no criterion results | ? |")
    else:
        fps = 1e9 / rust.median_ns
        lines.append(f"| Rust ≥ 500,000 frames/s | {fps:,.0f} († criterion) | {_met(fps >= 5e5)} |")
    for key, how in _OURS.items():
        fps = 1e9 / frame.median(key)
        lines.append(
            f"| Python incl. boundary ≥ 200,000 frames/s, {how} | {fps:,.0f} | {_met(fps >= 2e5)} |"
        )
    for key, how in _OURS.items():
        ocpp, ours = frame.median("ocpp"), frame.median(key)
        measured = f"{_x(ocpp / ours)} ({_us(ocpp)} / {_us(ours)} µs)"
        lines.append(
            f"| ≥ 300{X} the ocpp package, {how} | {measured} | {_met(ocpp / ours >= 300)} |"
        )
    return [*lines, ""]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _rust_note(run: Run) -> str:
    if not run.rust:
        return (
            "† No Rust results: `target/criterion` holds none. Produce them with `make bench`, or "
            "`OCPP_SCHEMA_ROOT=$(.venv/bin/python -c 'import ocpp,os;print(os.path.dirname("
            "ocpp.__file__))') cargo bench --no-default-features --bench parse_validate`."
        )
    when = []
    for bench in dict.fromkeys(r.bench for r in run.rust):
        results = [r for r in run.rust if r.bench == bench]
        produced = sorted(r.produced for r in results)
        span = produced[0] if produced[0] == produced[-1] else f"{produced[0]} to {produced[-1]}"
        stale = " (**older than a Rust source or frame it measures**)" * any(
            r.stale for r in results
        )
        when.append(f"`{bench}` {span}{stale}")
    return (
        "† Rust rows are criterion medians read from `target/criterion`, written by `cargo bench"
        " --no-default-features --bench parse_validate`, not during this run: "
        f"{'; '.join(when)}. Their ratios compare them with this run's Python rows."
    )


def render(run: Run) -> str:
    env, s = run.environment, run.settings
    versions = ", ".join(f"{name} {v}" for name, v in env.versions.items())
    lines = [
        "## Parse + validate, per frame",
        "",
        f"- **Date**: {run.started} UTC; **command**: `{run.command}`",
        f"- **Machine**: {env.cpu}, {env.cores} cores ({env.cores_usable} usable), Linux"
        f" {env.kernel}; load average {_load(env.load_average)} at start,"
        f" {_load(run.load_average_end)} at end",
        f"- **Versions**: {env.python}, {env.rustc or 'rustc not found'}, {versions};"
        f" `csms._core` built {env.extension_built}"
        + " (**older than a Rust source**)"
        * env.extension_stale,
        f"- **Method**: one process, candidates interleaved round by round; {s.rounds} rounds of"
        f" ~{s.round_seconds} s each (~{s.slow_round_seconds} s for the ocpp package), after a"
        " calibrating warm-up; median and min over the rounds of the per-frame time; GC off"
        f" inside a round, as in `timeit`. {X} = how many times faster than the column's"
        " reference.",
        f"- **Contention**: the timing thread was on a CPU for {_cpu_share(run)} of the timed"
        " wall time (100 % = the core was ours alone).",
        "",
        *_targets(run),
    ]
    for frame in run.frames:
        lines += _frame_table(frame, run.rust)
    return "\n".join([*lines, _rust_note(run)])


def _cpu_share(run: Run) -> str:
    shares = [m.stats.cpu_share for f in run.frames for m in f.measured]
    return f"{min(shares):.0%} to {max(shares):.0%}".replace("%", " %")


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


INTRO = """# bench/

Benchmarks of the CSMS core. `make bench` runs the Rust micro benchmark (criterion,
`core_rs/benches/parse_validate.rs`) and then the Python one (`python -m bench.micro`, add
`--quick` for a smoke run), which measures our codec beside the `ocpp` package and msgspec on
the frames in `bench/frames/`. Each benchmark rewrites only its own section below, between its
`<!-- name:begin -->` and `<!-- name:end -->` markers; raw results go to `bench/results/*.json`
(not versioned).

The rule for every report here: state the machine, the versions, the exact command, and the
comparison run beside it in the same run. Give medians and ratios, because absolute times on a
shared machine drift from run to run, while ratios between candidates measured side by side in
one run drift much less.
"""


def update_readme(path: Path, section: str) -> None:
    """Replace the micro section of ``path`` (created, or appended to, if needed)."""
    write_section(path, BEGIN, END, f"{BEGIN}\n{section}\n{END}", INTRO)
