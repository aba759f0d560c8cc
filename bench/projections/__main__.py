"""Projection benchmark: projector ingest vs a plain batched INSERT of the same rows (the ceiling),
side by side in one run, then each ready-made report over the result.

    .venv/bin/python -m bench.projections [--stations 200] [--messages 250] [--quick]

A generated history (1.6 MeterValues of 10 sampled values each, with our CALLRESULT in the
same stream message, as the gateway stores them; one transaction per station) is published to
an embedded nats-server, then:

1. **projector**: `Projector.run_until(last)` (an ephemeral consumer, the production fold and
   inserts) into a fresh chDB database: messages fetched, folded, inserted, acked;
2. **fold only**: the same messages folded in-process (no NATS, no insert);
3. **plain INSERT (ceiling)**: the meter_values rows of that fold inserted with the store's
   batched `insert` in batches of the projector's size, into another fresh database.

Rates are meter-value rows per second of wall time. Writes its section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats

from bench.sections import write_section
from csms.domain.events import FrameEvent
from streams import envelope, schema
from streams.embedded import EmbeddedNats
from streams.projections.projector import Projector, ProjectorConfig, fold_batch
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


def history(stations: int, messages: int) -> list[tuple[str, bytes]]:
    """(subject, stream message) pairs: a StartTransaction then MeterValues every minute."""
    out: list[tuple[str, bytes]] = []
    for s in range(stations):
        station_id = f"BENCH-{s:05d}"
        ns = int(T0.timestamp() * 1e9)
        event = functools.partial(_event, s, station_id, ns)
        start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T0.isoformat()}
        call = msgspec.json.encode([2, "st", "StartTransaction", start]).decode()
        result = msgspec.json.encode([3, "st", {"transactionId": s + 1}]).decode()
        pair = [
            event(1, False, 2, "st", "StartTransaction", call),
            event(2, True, 3, "st", "StartTransaction", result),
        ]
        out.append((subject(station_id), envelope.encode_many(pair)))
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
            frames = [
                event(3 + 2 * m, False, 2, uid, "MeterValues", _frame(2, uid, payload)),
                event(4 + 2 * m, True, 3, uid, "MeterValues", f'[3,"{uid}",{{}}]'),
            ]
            out.append((subject(station_id), envelope.encode_many(frames)))
    return out


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


async def publish(url: str, messages: list[tuple[str, bytes]]) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js, StreamSettings())
    last = 0
    window = 2000
    for i in range(0, len(messages), window):
        acks = [js.publish(subj, data) for subj, data in messages[i : i + window]]
        for ack in await asyncio.gather(*acks):
            last = max(last, ack.seq)
    await nc.close()
    return last


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="csms-bench-proj-"))
    server = EmbeddedNats(work / "nats")
    await server.start()
    try:
        messages = history(args.stations, args.messages)
        last = await publish(server.url, messages)
        url = f"chdb://{work / 'clickhouse'}"
        config = ProjectorConfig(durable=None, max_messages=args.batch, max_delay_s=1.0)
        results, reports = await _measure(url, server.url, messages, last, config)
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "reports": reports, "messages": len(messages), "args": args}


async def _measure(
    url: str,
    nats_url: str,
    messages: list[tuple[str, bytes]],
    last: int,
    config: ProjectorConfig,
) -> tuple[list[Result], list[tuple[str, float, int]]]:
    projected = await Store.open(url, database="bench_projector")
    ceiling = await Store.open(url, database="bench_ceiling")
    try:
        for store in (projected, ceiling):
            await store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
            await store.command(f"CREATE DATABASE `{store.database}`")
            await schema.apply(store)
        # 1. projector, end to end
        nc = await nats.connect(nats_url)
        projector = Projector(nc.jetstream(), projected, config)
        t0 = time.perf_counter()
        await projector.run_until(last)
        projector_s = time.perf_counter() - t0
        await nc.close()
        (row,) = await projected.query("SELECT count() AS n FROM meter_values FINAL")
        meter_rows = int(row["n"])
        # 2. fold only
        batch = [(i + 1, s, data, 0) for i, (s, data) in enumerate(messages)]
        t0 = time.perf_counter()
        rows = fold_batch(batch)
        fold_s = time.perf_counter() - t0
        # 3. plain batched INSERT of the same meter rows: the ceiling
        table = rows.tables["meter_values"]
        size = max(1, len(table) * config.max_messages // max(1, len(messages)))
        t0 = time.perf_counter()
        for i in range(0, len(table), size):
            await ceiling.insert("meter_values", table[i : i + size], COLUMNS["meter_values"])
        insert_s = time.perf_counter() - t0
        results = [
            Result("projector: fetch + fold + insert all tables + ack", meter_rows, projector_s),
            Result("fold only (pure Python, all tables)", len(table), fold_s),
            Result("plain batched INSERT of the meter_values rows (ceiling)", len(table), insert_s),
        ]
        reports = []
        for name in REPORTS:
            t0 = time.perf_counter()
            out = await run_report(projected, name, ReportFilters(minutes=0))
            reports.append((name, time.perf_counter() - t0, len(out)))
        return results, reports
    finally:
        await projected.close()
        await ceiling.close()


def render(outcome: dict[str, Any], command: str) -> str:
    args = outcome["args"]
    results: list[Result] = outcome["results"]
    ceiling = results[-1].rate
    load = os.getloadavg()
    lines = [
        "## Projections: ingest into the embedded engine",
        "",
        f"- **Date**: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC; **command**: `{command}`",
        f"- **Machine**: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Linux {platform.release()}; load average {load[0]:.2f} at the end",
        f"- **History**: {args.stations} stations x {args.messages} MeterValues of 10 sampled "
        f"values ({outcome['messages']:,} stream messages, CALL + CALLRESULT each); projector "
        f"batches of {args.batch} messages; chDB (clickhouse-connect chdb backend)",
        "",
        "| candidate | meter-value rows | seconds | rows/s | share of the ceiling |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in results:
        share = f"{100 * r.rate / ceiling:.0f} %" if ceiling else ""
        lines.append(f"| {r.name} | {r.meter_rows:,} | {r.seconds:.2f} | {r.rate:,.0f} | {share} |")
    lines += [
        "",
        "Reports over the projected history (`ReportFilters()`; silent-stations with minutes=0):",
        "",
        "| report | seconds | rows |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {secs:.3f} | {n:,} |" for name, secs, n in outcome["reports"]]
    target = results[0].rate >= 200_000
    lines += [
        "",
        f"Issue target: projector ingest >= 200,000 meter-value rows/s: "
        f"{results[0].rate:,.0f} ({'met' if target else '**not met**'}). The full history of "
        "the issue (10,000 stations x 30 days, >= 100 M rows), projection lag under gateway "
        "load and report times at that size were **not run** (time).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.projections")
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=250, help="MeterValues per station")
    parser.add_argument("--batch", type=int, default=2000, help="projector batch, messages")
    parser.add_argument("--quick", action="store_true", help="a smoke run; README untouched")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.messages = 10, 20
    outcome = asyncio.run(run(args))
    command = ".venv/bin/python -m bench.projections " + (
        "--quick" if args.quick else f"--stations {args.stations} --messages {args.messages}"
    )
    text = render(outcome, command)
    print(text)
    if not args.quick:
        write_section(README, BEGIN, END, f"{BEGIN}\n{text}\n{END}")


if __name__ == "__main__":
    main()
