"""The load section of bench/README.md: header, the issue's bar, the tables, plain notes."""

from __future__ import annotations

import resource

from bench.load import report
from bench.load.model import HEADLINE_VERSION, Run, SimResult


def _nats_placement(run: Run) -> str:
    if run.nats_cpu == 0:
        return (
            "csms gets its own `nats-server -js` (file storage), **also on CPU 0, because it is "
            "part of our system's cost**, and answers a CALL only after JetStream stored its event"
        )
    return (
        "csms gets its own `nats-server -js` (file storage) pinned to **CPU 1, beside the "
        "simulator** (`--nats-cpu 1`: the gateway alone on CPU 0, as when NATS runs on machines "
        "of its own; nats-server's CPU then competes with the simulator's), and answers a CALL "
        "only after JetStream stored its event"
    )


def _header(run: Run) -> list[str]:
    env, plan = run.environment, run.plan
    counts = " and ".join(str(n) for n in plan.throughput_stations)
    return [
        "## Load: simulated stations against csms, the ocpp-package reference and an echo ceiling",
        "",
        f"- **Date**: {run.started} to {run.finished}; **command**: `{run.command}`",
        *report.machine_lines(env),
        f"- **Scheduling**: {env['scheduling']}.",
        "- **Setup**: each server is its own process pinned to CPU 0 (`taskset -c 0`); "
        f"{_nats_placement(run)}. The station "
        "simulator (`bench/fleet/throughput.py`: the fleet simulator's lean stations, picows "
        "clients on uvloop, payloads from `bench/fleet/payloads.py`) is pinned to CPU 1. "
        "The reference validates in the default thread pool, as the ocpp package does by default; "
        "those threads share CPU 0 too.",
        f"- **Servers**: {'; '.join(report.LABELS.values())}.",
        "- **Method** (scenario `bench/scenarios/throughput.toml`): every station connects with "
        f"the subprotocol of its OCPP version ({', '.join(plan.versions)}), sends a "
        "BootNotification, starts one endless transaction (1.6 StartTransaction, 2.x "
        "TransactionEvent Started), then sends meter values with one CALL outstanding, as fast "
        "as answered: 1.6 MeterValues (ten sampled values: current and voltage per phase, "
        "energy register, power, offered current, SoC; about 1,240 bytes) or 2.x "
        "TransactionEvent Updated with the same values (about 1,550 bytes), encoded once a "
        "second per station, a fresh unique id (and 2.x seqNo) each; "
        f"{counts} stations, {plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s measured. "
        f"The issue's bar is read from the {HEADLINE_VERSION} MeterValues rows"
        + (
            f", from each server's sustained window: {plan.sustained_s:g} s measured after "
            f"{plan.sustained_warmup_s:g} s at full speed, {max(plan.throughput_stations)} "
            "stations (csms's rate falls during its first minutes as nats-server's stream "
            "grows; the short windows above come before that). "
            + (
                "csms, which stores, runs that window twice: first of all its windows on the "
                "memory as the machine had it; then a scratch file fills whatever memory is "
                "still free with clean page cache (`bench.load.host_memory`), the harness waits "
                f"until {plan.expiry_wait_s:g} s after that window (its `Nats-Msg-Id`s leave "
                "nats-server's duplicate table), and its short "
                "windows and the second sustained window run on memory in use, the state of a "
                "server that has run a while. On this VM free memory goes back to the "
                "host, and the first write to such a page costs several times a backed "
                "page's (bench/README.md, *Sustained rate (session 8)*): a stream growing "
                "into free memory pays a price a server whose memory is in use does not. "
                "The bar reads the second window and shows the first beside it. "
                if plan.fill_memory
                else ""
            )
            if plan.sustained_s > 0
            else ". "
        )
        + "Latency is send → answer at the simulator. Half rate (1.6): "
        f"{plan.half_rate_stations} stations, each limited to its share of half the server's "
        "best rate in any window, short or sustained. Idle memory: VmRSS of each server "
        "process with "
        f"{plan.warm_stations} booted stations, then with {plan.idle_stations:,} more booted (no "
        "transaction) "
        "and idle; per connection = ΔRSS / N. "
        + (
            f"csms also with `--workers {plan.idle_group_workers}` at "
            f"N = {plan.idle_group_stations:,}, opened by {plan.idle_group_workers} simulator "
            "processes, on an instance of its own started first: the open-files limit is per "
            "process, and one process of each side cannot hold 20,000 sockets here; per "
            "connection = the gateway processes' ΔRSS summed / N. "
            if plan.idle_group_stations
            else ""
        )
        + "Order, on one instance of each server: idle "
        "memory, (csms: sustained on memory as found, the fill,) throughput at each station "
        "count, sustained, half rate; after each step the "
        "harness "
        "waits until the server's processes are quiet (under 5 % of a core over 0.5 s, at "
        "most 60 s), so no step pays for the previous one's clean-up (closing 20,000 "
        "sessions); csms's half-rate run finds "
        "its stream (and the 120 s duplicate window of `Nats-Msg-Id`s) filled by the "
        "full-speed runs before it.",
        "- **Columns**: server CPU = CPU time of the server's processes (csms: + nats-server) / "
        "window; CPU 0 others = CPU 0 busy time not spent by them (other work on the machine); "
        f"sim CPU ⚠ = simulator ≥ {report.SIM_BOUND:.0%} busy, so it may be what limits that row; "
        "sim µs/call = the simulator's own CPU time per answered call (its cost, send and "
        "read); "
        "server RSS at the end of the window (csms: csms + nats-server). Under SCHED_FIFO the "
        "kernel still keeps ~5 % of each core for other work, so a saturated server shows "
        "~95 %.",
    ]


def _fd_cap() -> str:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 20_000 + 1_000:
        return "within this machine's open-files limit"
    return (
        f"but here only as many as the hard open-files limit of {hard:,} leaves room for; "
        "raising it needs CAP_SYS_RESOURCE, which this container lacks"
    )


def _notes(run: Run) -> list[str]:
    notes = []
    for s in run.servers:
        notes += [f"**{s.name} not fully measured**: {f}" for f in s.failures]
        runs: list[SimResult] = [
            *s.throughput,
            *([s.sustained_as_found] if s.sustained_as_found else []),
            *([s.sustained] if s.sustained else []),
            *([s.half_rate] if s.half_rate else []),
        ]
        for r in runs:
            if r.errors:
                notes.append(f"{s.name}, {r.stations} stations: errors {report.errors(r)}.")
            if r.sim_cpu >= report.SIM_BOUND:
                notes.append(
                    f"{s.name}, {r.stations} stations: the simulator was "
                    f"{r.sim_cpu:.0%} busy; this rate is a lower bound of what {s.name} can do."
                )
        best = report.best(s) if s.name == "csms" else None
        if best is not None:
            split = ", ".join(f"{k} {v:.0%}" for k, v in best.server_cpu.items())
            where = (
                "CPU 0" if run.nats_cpu == 0 else "the CPU (csms on CPU 0, nats-server on CPU 1)"
            )
            notes.append(
                f"Where {where} went in csms's best {HEADLINE_VERSION} run ({best.stations} "
                f"stations): {split}; busy: "
                + ", ".join(f"{k} {v:.0%}" for k, v in best.cpu_busy.items())
                + ". Where the csms process spends it: the profile section below "
                "(`python -m bench.load.profile`)."
            )
    if run.plan.idle_stations < 20_000 and not run.plan.idle_group_stations:
        notes.append(
            f"Idle memory was measured at N = {run.plan.idle_stations:,}, not at the issue's "
            f"20,000 (`--full` does 20,000, {_fd_cap()})."
        )
    return notes


def render(run: Run) -> str:
    lines = [report.BEGIN, *_header(run), "", "### The issue's bar", "", *report.bar(run)]
    lines += [
        "",
        "### Throughput: meter values answered per second",
        "",
        *report.throughput_tables(run),
    ]
    sustained = report.sustained_table(run)
    if sustained:
        lines += [
            "",
            f"### Sustained: {HEADLINE_VERSION} MeterValues minutes into the run",
            "",
            *sustained,
        ]
    lines += ["", "### Latency at half the best rate", "", *report.half_rate_table(run)]
    lines += ["", "### Memory per idle connection", "", *report.idle_table(run)]
    notes = _notes(run)
    if notes:
        lines += ["", "### Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join([*lines, report.END])


SECTION = report.Section("load", render, Run, str)
