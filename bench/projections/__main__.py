"""Projection benchmark: projector ingest vs a plain batched INSERT of the same rows (the ceiling),
side by side in one run, then each ready-made report over the result.

    .venv/bin/python -m bench.projections [--stations 200] [--messages 250] [--quick]

A generated history (1.6 MeterValues of 10 sampled values each, with our CALLRESULT in the
same stream message, as the gateway stores them; one transaction per station) is published to
an embedded nats-server, then:

1. **projector**: `Projector.run_until(last)` (an ephemeral consumer, the production path:
   the lean pull client, the compiled fold of the exchanges into Native blocks of events/facts
   with the Python fold for the rest, inserts, the engine-side view that explodes meter values,
   acks) into a fresh chDB database;
2. **compiled fold only** and **Python fold only** (the reference): the same messages folded
   in-process (no NATS, no insert);
3. **plain INSERT (ceiling)**: the projector's own meter_values rows (as many as the fold
   sample carries) inserted with the store's batched `insert` in batches of the projector's
   size, into another fresh database.

Rates are meter-value rows per second of wall time. Writes its section of bench/README.md.
The lag is `csms bench lag` (bench/load/lag.py), the 100 M-row reports
`python -m bench.projections.history`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import itertools
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats
import uvloop

from bench.sections import write_section
from csms.domain.events import FrameEvent
from streams import envelope, schema
from streams.embedded import EmbeddedNats
from streams.projections.projector import Projector, ProjectorConfig, fold_batch, fold_batch_fast
from streams.projections.rows import COLUMNS
from streams.provision import StreamSettings, ensure_stream
from streams.reports import REPORTS, ReportFilters, run_report
from streams.store import Store
from streams.subjects import subject

BEGIN, END = "<!-- projections:begin -->", "<!-- projections:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SAMPLES = (
    ("Energy.Active.Import.Register", "", "kWh"),
    ("Power.Active.Import", "", "kW"),
    ("Current.Import", "L1", "A"),
    ("Current.Import", "L2", "A"),
    ("Current.Import", "L3", "A"),
    ("Voltage", "L1-N", "V"),
    ("Voltage", "L2-N", "V"),
    ("Voltage", "L3-N", "V"),
    ("SoC", "", "Percent"),
    ("Temperature", "", "Celsius"),
)


def history(stations: int, messages: int, prefix: str = "BENCH") -> Iterator[tuple[str, bytes]]:
    """(subject, stream message) pairs, station after station: a StartTransaction, then
    MeterValues every minute."""
    for s in range(stations):
        station_id = f"{prefix}-{s:05d}"
        ns = int(T0.timestamp() * 1e9)
        event = functools.partial(_event, s, station_id, ns)
        start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T0.isoformat()}
        call = msgspec.json.encode([2, "st", "StartTransaction", start]).decode()
        result = msgspec.json.encode([3, "st", {"transactionId": s + 1}]).decode()
        pair = [
            event(1, False, 2, "st", "StartTransaction", call),
            event(2, True, 3, "st", "StartTransaction", result),
        ]
        yield subject(station_id), envelope.encode_many(pair)
        for m in range(messages):
            at = (T0 + dt.timedelta(minutes=m + 1)).isoformat().replace("+00:00", "Z")
            sampled = [
                {"value": f"{(m + 1) * 0.2 + i:.3f}", "measurand": meas, "unit": unit}
                | ({"phase": phase} if phase else {})
                for i, (meas, phase, unit) in enumerate(SAMPLES)
            ]
            payload = {
                "connectorId": 1,
                "transactionId": s + 1,
                "meterValue": [{"timestamp": at, "sampledValue": sampled}],
            }
            uid = f"m{m}"
            seq = 3 + 2 * m
            exchange = envelope.Exchange(  # version 2, what the gateway writes for a CALL
                type=envelope.EXCHANGE_TYPE,  # and its answer (csms._core.exchange_message)
                version=2,
                node_id="bench",
                session_id=f"s{s}",
                station_id=station_id,
                ocpp_version="1.6",
                seq=seq,
                unique_id=uid,
                action="MeterValues",
                call_at_ns=ns + seq * 1_000_000,
                answer_type=3,
                answer_at_ns=ns + (seq + 1) * 1_000_000,
                call=msgspec.Raw(_frame(2, uid, payload).encode()),
                answer=msgspec.Raw(f'[3,"{uid}",{{}}]'.encode()),
            )
            yield subject(station_id), msgspec.json.encode(exchange)


def _event(
    s: int,
    station_id: str,
    ns: int,
    seq: int,
    out: bool,
    mtype: int,
    uid: str,
    action: str,
    raw: str,
) -> FrameEvent:
    return FrameEvent(
        event_id=f"bench-{s}-{seq}",
        kind="frame",
        station_id=station_id,
        ocpp_version="1.6",
        direction="out" if out else "in",
        message_type=mtype,
        unique_id=uid,
        action=action,
        raw=raw,
        received_at_ns=ns + seq * 1_000_000,
        node_id="bench",
        session_id=f"s{s}",
        seq=seq,
    )


def _frame(kind: int, uid: str, payload: dict[str, Any]) -> str:
    return msgspec.json.encode([kind, uid, "MeterValues", payload]).decode()


@dataclass
class Result:
    name: str
    meter_rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.meter_rows / self.seconds if self.seconds else 0.0


async def publish(url: str, messages: Iterable[tuple[str, bytes]]) -> tuple[int, int]:
    """Publish everything (2,000 in flight); (message count, last stream sequence)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js, StreamSettings())
    last = count = 0
    window: list[tuple[str, bytes]] = []
    for message in _with_end(messages):
        if message is not None:
            window.append(message)
        if len(window) >= 2000 or (message is None and window):
            acks = await asyncio.gather(*(js.publish(subj, data) for subj, data in window))
            last = max(last, *(a.seq for a in acks))
            count += len(window)
            window = []
    await nc.close()
    return count, last


def _with_end(messages: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes] | None]:
    yield from messages
    yield None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="csms-bench-proj-"))
    server = EmbeddedNats(work / "nats")
    await server.start()
    url = f"chdb://{work / 'clickhouse'}"
    try:
        count, last = await publish(server.url, history(args.stations, args.messages))
        config = ProjectorConfig(durable=None, max_messages=args.batch, max_delay_s=1.0)
        store = await Store.open(url, database="bench_projector")
        try:
            sample = list(itertools.islice(history(args.stations, args.messages), args.sample))
            rounds: list[list[Result]] = []
            for _ in range(args.repeat):  # projector, fold, ceiling side by side, per round
                await _fresh(store)
                projector = await _project(store, server.url, last, config)
                rounds.append([projector, *await _sample(store, url, sample, config)])
            results = [_median(runs) for runs in zip(*rounds, strict=True)]
            reports = await _reports(store)
        finally:
            await store.close()
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "results": results,
        "rounds": rounds,
        "reports": reports,
        "messages": count,
        "sample": len(sample),
        "args": args,
    }


def _median(runs: tuple[Result, ...]) -> Result:
    """The run of median rate (of an odd count; the upper middle of an even one)."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


async def _fresh(store: Store) -> None:
    await store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
    await store.command(f"CREATE DATABASE `{store.database}`")
    await schema.apply(store)


async def _project(store: Store, nats_url: str, last: int, config: ProjectorConfig) -> Result:
    """The projector end to end over the whole history."""
    nc = await nats.connect(nats_url)
    projector = Projector(nc.jetstream(), store, config, nats_url=nats_url)
    t0 = time.perf_counter()
    await projector.run_until(last)
    seconds = time.perf_counter() - t0
    await nc.close()
    (row,) = await store.query("SELECT count() AS n FROM meter_values FINAL")
    return Result("projector: fetch + fold + insert all tables + ack", int(row["n"]), seconds)


async def _sample(
    store: Store, url: str, sample: list[tuple[str, bytes]], config: ProjectorConfig
) -> list[Result]:
    """The Python fold alone over the first messages of the history, and the plain batched
    INSERT (the ceiling) of the projector's own meter_values rows (as many as the fold
    sample carries), in batches of the projector's size."""
    batch = [(i + 1, subj, data, 0) for i, (subj, data) in enumerate(sample)]
    t0 = time.perf_counter()
    fold_batch(batch)
    fold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fold_batch_fast(batch)
    compiled_s = time.perf_counter() - t0
    names = COLUMNS["meter_values"]
    _, found = await store.query_table(
        f"SELECT {', '.join(names)} FROM meter_values LIMIT {{n:UInt64}}",
        {"n": len(sample) * len(SAMPLES)},
    )
    at = names.index("sampled_at")
    table = [[*r[:at], int(r[at].timestamp() * 1000), *r[at + 1 :]] for r in found]
    size = max(1, len(table) * config.max_messages // max(1, len(sample)))
    ceiling = await Store.open(url, database="bench_ceiling")
    try:
        await _fresh(ceiling)
        t0 = time.perf_counter()
        for i in range(0, len(table), size):
            await ceiling.insert("meter_values", table[i : i + size], names)
        insert_s = time.perf_counter() - t0
    finally:
        await ceiling.command(f"DROP DATABASE IF EXISTS `{ceiling.database}`")
        await ceiling.close()
    return [
        Result(
            "compiled fold only (the projector's: events, facts as Native blocks; sample)",
            len(table),
            compiled_s,
        ),
        Result("Python fold only (the reference: facts, events rows; sample)", len(table), fold_s),
        Result(
            "plain batched INSERT of the meter_values rows (ceiling; sample)", len(table), insert_s
        ),
    ]


async def _reports(store: Store) -> list[tuple[str, float, int]]:
    out = []
    for name in REPORTS:
        t0 = time.perf_counter()
        rows = await run_report(store, name, ReportFilters(minutes=0))
        out.append((name, time.perf_counter() - t0, len(rows)))
    return out


def render(outcome: dict[str, Any], command: str) -> str:
    args = outcome["args"]
    results: list[Result] = outcome["results"]
    ceiling = results[-1].rate
    load = os.getloadavg()
    lines = [
        "## Projections: ingest into the embedded engine",
        "",
        f"- **Date**: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC; **command**: `{command}`",
        f"- **Machine**: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"shared with other work, Linux {platform.release()}; load average {load[0]:.2f} "
        "at the end",
        f"- **History**: {args.stations:,} stations x {args.messages:,} MeterValues of 10 "
        f"sampled values, one transaction each ({outcome['messages']:,} stream messages, "
        f"CALL + CALLRESULT each, published to an embedded nats-server first); projector "
        f"batches of {args.batch} messages into chDB (clickhouse-connect chdb backend). Fold "
        f"only and the ceiling run over the first {outcome['sample']:,} messages.",
        "",
        f"Each candidate ran {args.repeat} times, in rounds (projector, folds, ceiling); the "
        "table gives each one's median run, the last column every run's rate in order. The "
        "machine may be shared with other work (see the load average): rates move from run "
        "to run; compare within a run (the share of the ceiling).",
        "",
        "| candidate | meter-value rows | seconds | rows/s | share of the ceiling | "
        "every run, rows/s |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for i, r in enumerate(results):
        share = f"{100 * r.rate / ceiling:.0f} %" if ceiling else ""
        every = ", ".join(f"{rnd[i].rate:,.0f}" for rnd in outcome["rounds"])
        lines.append(
            f"| {r.name} | {r.meter_rows:,} | {r.seconds:.2f} | {r.rate:,.0f} | {share} | {every} |"
        )
    lines += [
        "",
        "Reports over the projected history (default filters; silent-stations with minutes=0):",
        "",
        "| report | seconds | rows |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {secs:.3f} | {n:,} |" for name, secs, n in outcome["reports"]]
    lines += [
        "",
        "| target of the issue | measured | met |",
        "|---|---|:-:|",
        f"| projector ingest >= 200,000 meter-value rows/s | {results[0].rate:,.0f} | "
        f"{'yes' if results[0].rate >= 200_000 else '**no**'} |",
        "| lag p99 <= 2 s at the gateway's sustained maximum | see *End-to-end lag* "
        "(csms bench lag) | |",
        "| each report <= 1 s over 10,000 stations x 30 days (>= 100 M rows) | see *Reports "
        "over a generated history* (python -m bench.projections.history) | |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.projections")
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=250, help="MeterValues per station")
    parser.add_argument("--batch", type=int, default=10_000, help="projector batch, messages")
    parser.add_argument("--sample", type=int, default=20_000, help="messages for fold/ceiling")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians reported")
    parser.add_argument("--quick", action="store_true", help="a smoke run; README untouched")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.messages, args.repeat = 10, 20, 1
    outcome = uvloop.run(run(args))  # the loop `csms serve` runs on
    command = ".venv/bin/python -m bench.projections " + (
        "--quick"
        if args.quick
        else f"--stations {args.stations} --messages {args.messages} --repeat {args.repeat}"
    )
    text = render(outcome, command)
    print(text)
    if not args.quick:
        write_section(README, BEGIN, END, f"{BEGIN}\n{text}\n{END}")


if __name__ == "__main__":
    main()
