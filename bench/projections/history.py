"""A generated history of S stations x D days inside the engine, then every ready-made report
over it (the issue's size: 10,000 stations x 30 days, >= 100 million meter values).

    python -m bench.projections.history [--stations 10000] [--days 30] [--runs 3] [--keep DIR]

How it is generated (INSERT ... SELECT FROM numbers(), no Python per row):

- ``events``: one 1.6 MeterValues CALL per station every 15 minutes of a 2-hour session, four
  sessions a day (9 messages a session, 36 a day), ten sampled values each (energy register in
  kWh, power, 3 currents, 3 voltages, SoC, temperature: the load benchmark's payload), raw JSON
  as the gateway stores it. The ``meter_values`` rows are made from them by the projector's own
  path for meter values: the engine-side view of schema 009. 10,000 x 30 x 36 x 10 =
  108,000,000 meter values.
- ``transaction_facts``: what the Python fold writes for those sessions (a start and a stop fact
  per transaction, a reading fact per MeterValues), generated in SQL with the fold's columns
  (the CALLRESULTs and StartTransaction/StopTransaction CALLs themselves are not generated).
- ``station_boots`` (one per station), ``status_notifications`` (a Faulted with an error code
  twice a day per station), ``station_sessions`` and ``station_seen`` (one per station).

Each report then runs ``--runs`` times with default filters (silent-stations: minutes = 0);
the median is reported. Writes the ``projections-history`` section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sections import write_section
from streams import schema
from streams.reports import REPORTS, ReportFilters, run_report
from streams.store import Store

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- projections-history:begin -->", "<!-- projections-history:end -->"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
SESSIONS_PER_DAY = 4
MESSAGES_PER_SESSION = 9
SAMPLES = 10

_SAMPLED = (
    '\'{"value":"\', toString(round(k * 2.5, 3)), \'","measurand":"Energy.Active.Import.'
    'Register","unit":"kWh"},'
    '{"value":"11.000","measurand":"Power.Active.Import","unit":"kW"},'
    '{"value":"16.000","measurand":"Current.Import","phase":"L1","unit":"A"},'
    '{"value":"16.000","measurand":"Current.Import","phase":"L2","unit":"A"},'
    '{"value":"16.000","measurand":"Current.Import","phase":"L3","unit":"A"},'
    '{"value":"230.000","measurand":"Voltage","phase":"L1-N","unit":"V"},'
    '{"value":"230.000","measurand":"Voltage","phase":"L2-N","unit":"V"},'
    '{"value":"230.000","measurand":"Voltage","phase":"L3-N","unit":"V"},'
    '{"value":"\', toString(20 + k * 8), \'","measurand":"SoC","unit":"Percent"},'
    '{"value":"25.000","measurand":"Temperature","unit":"Celsius"}\''
)

# n -> (day, session, k, station): station varies fastest, so the stream is in time order
_POSITION = f"""
    number AS n,
    n % {{stations:UInt64}} AS s,
    intDiv(n, {{stations:UInt64}}) AS slot,
    slot % {MESSAGES_PER_SESSION} AS k,
    intDiv(slot, {MESSAGES_PER_SESSION}) AS day_session,
    day_session * {{stations:UInt64}} + s + 1 AS tx,
    concat('HIST-', leftPad(toString(s), 5, '0')) AS station_id,
    {T0} + intDiv(day_session, {SESSIONS_PER_DAY}) * 86400
        + (day_session % {SESSIONS_PER_DAY}) * 21600 + k * 900 + (s % 600) AS t
"""

EVENTS = f"""
INSERT INTO events (station_id, received_at, stream_seq, idx, event_id, kind, ocpp_version,
    direction, message_type, unique_id, action, raw, node_id, session_id, seq, reason)
WITH {_POSITION}
SELECT station_id, toDateTime64(t, 9, 'UTC'), n + 1, 0, concat('hist-', toString(n)), 'frame',
    '1.6', 'in', 2, concat('m', toString(n)), 'MeterValues',
    concat('[2,"m', toString(n), '","MeterValues",{{"connectorId":1,"transactionId":',
        toString(tx), ',"meterValue":[{{"timestamp":"',
        formatDateTime(toDateTime(t, 'UTC'), '%Y-%m-%dT%H:%i:%SZ', 'UTC'),
        '","sampledValue":[', {_SAMPLED}, ']}}]}}]'),
    'hist', concat('s', toString(s)), k, ''
FROM numbers({{messages:UInt64}})
"""

READINGS = f"""
INSERT INTO transaction_facts (station_id, transaction_id, stream_seq, idx, n, fact, ocpp_version,
    at, seq_no, offline, evse_id, connector_id, id_token, meter_wh, role, stop_reason,
    charging_state, corr)
WITH {_POSITION}
SELECT station_id, toString(tx), n + 1, 0, 0, 'reading', '1.6', toDateTime64(t, 3, 'UTC'), NULL,
    0, NULL, 1, '', k * 2500.0, 'sample', '', '', ''
FROM numbers({{messages:UInt64}})
"""

STARTS_STOPS = f"""
INSERT INTO transaction_facts (station_id, transaction_id, stream_seq, idx, n, fact, ocpp_version,
    at, seq_no, offline, evse_id, connector_id, id_token, meter_wh, role, stop_reason,
    charging_state, corr)
WITH
    number AS n,
    n % {{stations:UInt64}} AS s,
    intDiv(n, {{stations:UInt64}}) AS day_session,
    day_session * {{stations:UInt64}} + s + 1 AS tx,
    concat('HIST-', leftPad(toString(s), 5, '0')) AS station_id,
    {T0} + intDiv(day_session, {SESSIONS_PER_DAY}) * 86400
        + (day_session % {SESSIONS_PER_DAY}) * 21600 + (s % 600) AS t0
SELECT station_id, toString(tx), {{messages:UInt64}} + 2 * n + 1 + stop, 0, 0,
    if(stop, 'stop', 'start'), '1.6',
    toDateTime64(t0 + stop * {(MESSAGES_PER_SESSION - 1) * 900}, 3, 'UTC'), NULL, 0, NULL,
    if(stop, NULL, 1), if(stop, '', 'TAG'),
    if(stop, {(MESSAGES_PER_SESSION - 1) * 2500.0}, 0.0), if(stop, 'end', 'begin'),
    if(stop, 'Local', ''), '', ''
FROM numbers({{transactions:UInt64}})
ARRAY JOIN [0, 1] AS stop
"""

STATIONS = [
    """INSERT INTO station_boots (station_id, at, stream_seq, idx, vendor, model, firmware,
        serial_number)
    SELECT concat('HIST-', leftPad(toString(number), 5, '0')), toDateTime64({t0:UInt64}, 3, 'UTC'),
        0, number, concat('Vendor', toString(number % 5)), concat('Model', toString(number % 7)),
        concat('1.', toString(number % 3)), toString(number)
    FROM numbers({stations:UInt64})""",
    """INSERT INTO status_notifications (station_id, at, stream_seq, idx, evse_id, connector_id,
        status, error_code, vendor_error_code, info)
    SELECT concat('HIST-', leftPad(toString(number % {stations:UInt64}), 5, '0')),
        toDateTime64({t0:UInt64} + intDiv(number, {stations:UInt64}) * 43200
            + number % 600, 3, 'UTC'),
        0, number, NULL, 1, 'Faulted',
        ['GroundFailure', 'OverCurrentFailure', 'PowerMeterFailure'][number % 3 + 1], '', ''
    FROM numbers({stations:UInt64} * {days:UInt64} * 2)""",
    """INSERT INTO station_sessions (station_id, session_id, event, at, node_id, reason)
    SELECT concat('HIST-', leftPad(toString(number), 5, '0')), concat('s', toString(number)),
        'connected', toDateTime64({t0:UInt64}, 9, 'UTC'), 'hist', ''
    FROM numbers({stations:UInt64})""",
    """INSERT INTO station_seen (station_id, last_seen_at)
    SELECT concat('HIST-', leftPad(toString(number), 5, '0')),
        toDateTime64({t0:UInt64} + {days:UInt64} * 86400 - number % 7200, 9, 'UTC')
    FROM numbers({stations:UInt64})""",
]


async def generate(store: Store, stations: int, days: int) -> dict[str, float]:
    transactions = stations * days * SESSIONS_PER_DAY
    messages = transactions * MESSAGES_PER_SESSION
    params = {
        "stations": stations,
        "days": days,
        "messages": messages,
        "transactions": transactions,
        "t0": T0,
    }
    timings = {"events + meter_values (view)": 0.0, "transaction_facts": 0.0}
    chunk = stations * MESSAGES_PER_SESSION * SESSIONS_PER_DAY  # one day per insert
    day_transactions = stations * SESSIONS_PER_DAY
    t = time.perf_counter()
    for sql in STATIONS:
        await store.command(sql, params)
    timings["stations"] = time.perf_counter() - t
    for day in range(days):
        # day by day: bounded memory per INSERT, and a history cut short is still whole days
        t = time.perf_counter()
        numbers = f"FROM numbers({day * chunk}, {chunk})"
        await store.command(EVENTS.replace("FROM numbers({messages:UInt64})", numbers), params)
        timings["events + meter_values (view)"] += time.perf_counter() - t
        t = time.perf_counter()
        await store.command(READINGS.replace("FROM numbers({messages:UInt64})", numbers), params)
        tx_numbers = f"FROM numbers({day * day_transactions}, {day_transactions})"
        await store.command(
            STARTS_STOPS.replace("FROM numbers({transactions:UInt64})", tx_numbers), params
        )
        timings["transaction_facts"] += time.perf_counter() - t
        print(f"history: day {day + 1}/{days}", flush=True)
    return timings


async def counts(store: Store) -> dict[str, int]:
    out = {}
    for table in ("events", "meter_values", "transaction_facts", "status_notifications"):
        (row,) = await store.query(f"SELECT count() AS n FROM {table}")
        out[table] = int(row["n"])
    return out


async def time_reports(store: Store, runs: int) -> list[dict[str, Any]]:
    out = []
    for name in REPORTS:
        seconds = []
        rows = 0
        for _ in range(runs):
            t = time.perf_counter()
            found = await run_report(store, name, ReportFilters(minutes=0))
            seconds.append(time.perf_counter() - t)
            rows = len(found)
        out.append(
            {"report": name, "median_s": statistics.median(seconds), "runs": seconds, "rows": rows}
        )
        print(f"history: {name} {statistics.median(seconds):.3f} s, {rows} rows", flush=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="csms-history-"))
    store = await Store.open(f"chdb://{work}", database="history")
    try:
        if not args.reuse:
            await store.command("DROP DATABASE IF EXISTS history")
            await schema.apply(store)
            generated = await generate(store, args.stations, args.days)
        else:
            generated = {}
        table_counts = await counts(store)
        reports = await time_reports(store, args.runs)
    finally:
        await store.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"generated": generated, "counts": table_counts, "reports": reports}


def render(outcome: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    c = outcome["counts"]
    load = os.getloadavg()
    lines = [
        "## Reports over a generated history",
        "",
        f"- **Date**: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC; **command**: `{command}`",
        f"- **Machine**: {platform.machine()}, {os.cpu_count()} cores shared with other work "
        f"(noisy), Linux {platform.release()}; load average {load[0]:.2f} at the end; chDB "
        "(clickhouse-connect chdb backend)",
        f"- **History**: {args.stations:,} stations x {args.days} days, generated inside the "
        "engine with INSERT ... SELECT FROM numbers() (bench/projections/history.py): "
        f"{c['events']:,} MeterValues CALLs in `events`, exploded by the projector's meter-value "
        f"view (schema 009) into **{c['meter_values']:,} meter_values rows**; "
        f"{c['transaction_facts']:,} transaction facts (start, stop, one reading per "
        f"MeterValues) as the fold writes them; {c['status_notifications']:,} status "
        "notifications. "
        + (
            "Generation: "
            + ", ".join(f"{k} {v:,.0f} s" for k, v in outcome["generated"].items())
            + "."
            if outcome["generated"]
            else "Reports timed over a history generated earlier (--keep, then --reuse)."
        ),
        "",
        f"| report | median s ({args.runs} runs) | rows |",
        "|---|--:|--:|",
    ]
    lines += [
        f"| {r['report']} | {r['median_s']:.2f} | {r['rows']:,} |" for r in outcome["reports"]
    ]
    slowest = max(r["median_s"] for r in outcome["reports"])
    met = "met" if slowest <= 1.0 and c["meter_values"] >= 100_000_000 else "**not met**"
    lines += [
        "",
        f"- The bar, each report <= 1 s over >= 100 M meter values: slowest {slowest:.2f} s over "
        f"{c['meter_values']:,} meter values: {met}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.projections.history")
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", help="generate into (and keep) this chDB directory")
    parser.add_argument("--reuse", action="store_true", help="time the reports over --keep")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    outcome = asyncio.run(run(args))
    command = (
        f".venv/bin/python -m bench.projections.history --stations {args.stations} "
        f"--days {args.days} --runs {args.runs}"
        + (f" --keep {args.keep} --reuse" if args.reuse else "")
    )
    text = render(outcome, args, command)
    print(text)
    if not args.no_readme:
        block = f"{BEGIN}\n{text}\n{END}"
        write_section(README, BEGIN, END, block, after="<!-- projections:end -->")


if __name__ == "__main__":
    main()
