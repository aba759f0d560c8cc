"""The results table of a multi-seed battery (``--seeds``): one Markdown row per run from its
``report.json``, and the totals, for docs/durability.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = (
    "| Run | Faults (in order) | Answered CALLs | Lost (stream / projections) | Duplicates | "
    "Answers before store | Order violations | Reconnected | Longest silence | "
    "Projections caught up | Result |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _order_total(report: dict[str, Any]) -> int:
    order = report["invariants"]["I6_order"]
    return sum(v for k, v in order.items() if k not in ("pass", "examples") and isinstance(v, int))


def row(name: str, report: dict[str, Any], canary: bool) -> str:
    inv = report["invariants"]
    i1, i2, i3 = (
        inv["I1_acknowledged_is_durable"],
        inv["I2_no_duplicates"],
        inv["I3_no_answer_before_puback"],
    )
    i5 = inv["I5_liveness"]
    dups = (
        i2["duplicate_events_in_stream"]
        + i2["calls_stored_more_often_than_sent"]
        + i2["start_retries_with_a_different_id"]
        + int(i2["duplicate_events_in_projection"] or 0)
        + int(i2["duplicate_transactions_in_projection"] or 0)
    )
    early = i3["answers_received_before_store"] + i3["answered_calls_without_stored_answer"]
    faults = ", ".join(f["name"] for f in report["faults"])
    if canary:
        verdict = "sees loss (expected)" if i1["lost_in_stream"] else "**BLIND**"
    else:
        verdict = "pass" if report["pass"] else "**FAIL**"
    return (
        f"| {name} | {faults} | {i1['answered_calls']:,} | {i1['lost_in_stream']} / "
        f"{i1['lost_in_projection']} | {dups} | {early} | {_order_total(report)} | "
        f"{i5['answered_after_healing']}/{i5['stations']} | "
        f"{report['counts']['longest_time_without_any_answer_s']} s | "
        f"{i5['projection_caught_up_s']} s | {verdict} |"
    )


def render(out: Path, runs: list[tuple[str, Path, bool]]) -> str:
    """Rows for the runs that left a report (a run that crashed shows as such)."""
    lines = [HEADER]
    totals = {"runs": 0, "answered": 0, "lost": 0, "failed": 0}
    for name, directory, canary in runs:
        path = directory / "report.json"
        if not path.exists():
            lines.append(
                f"| {name} | no report (the run crashed: see {directory}/run) |" + " |" * 9
            )
            totals["failed"] += 1
            continue
        report = json.loads(path.read_text())
        lines.append(row(name, report, canary))
        if not canary:
            totals["runs"] += 1
            totals["answered"] += report["invariants"]["I1_acknowledged_is_durable"][
                "answered_calls"
            ]
            totals["lost"] += report["invariants"]["I1_acknowledged_is_durable"]["lost_in_stream"]
            totals["failed"] += 0 if report["pass"] else 1
    lines.append(
        f"\nFault runs: {totals['runs']}, answered CALLs {totals['answered']:,}, lost "
        f"{totals['lost']}, runs failing an invariant or crashed: {totals['failed']}."
    )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    return text
