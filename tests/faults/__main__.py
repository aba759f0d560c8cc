"""``python -m tests.faults``: the fault battery from the command line (``make faults``).

Exit status 0 when every run came out as expected: the fault runs with all invariants holding,
the canary run (``--canary``) with lost acknowledged CALLs reported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from tests.faults.battery import CANARY, FAULTS, Battery, BatteryConfig, summary


def _suite(args: argparse.Namespace) -> int:
    """Every run, even after a failing one; 0 only if all came out as expected."""
    common = ["--stations", str(args.stations), "--seed", str(args.seed)]
    common += ["--interval", str(args.interval), "--faults", args.faults]
    runs = {
        "single": ["--duration", str(args.duration)],
        "cluster": ["--duration", str(args.duration), "--nats-nodes", "3"],
        "canary": ["--duration", str(args.duration / 2), "--canary"],
    }
    codes = {}
    for name, extra in runs.items():
        print(f"== {name}", flush=True)
        codes[name] = main([*common, *extra, "--out", str(Path(args.out) / name)])
    print("== suite: " + ", ".join(f"{k} {'ok' if v == 0 else 'FAILED'}" for k, v in codes.items()))
    return 0 if not any(codes.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic+faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nats-nodes", type=int, choices=(1, 3), default=1)
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"of {', '.join(FAULTS)}")
    parser.add_argument("--canary", action="store_true", help="the unsafe run: must show loss")
    parser.add_argument("--interval", type=float, default=1.0, help="station think time, s")
    parser.add_argument("--out", default=".csms/faults", help="report.json, journal, logs")
    parser.add_argument(
        "--suite",
        action="store_true",
        help="the full battery: one node, then a 3-node R3 cluster, then the canary "
        "(half the duration), each under --out/<name>",
    )
    args = parser.parse_args(argv)
    if args.suite:
        return _suite(args)
    faults = CANARY if args.canary else tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(FAULTS) - set(CANARY)
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    if args.canary and args.nats_nodes != 1:
        parser.error("the canary runs on one node")
    config = BatteryConfig(
        out_dir=Path(args.out),
        stations=args.stations,
        duration_s=args.duration,
        seed=args.seed,
        nats_nodes=args.nats_nodes,
        faults=faults,
        interval_s=args.interval,
    )
    report = uvloop.run(Battery(config).run())
    print(summary(report))
    print(f"report: {config.out_dir / 'report.json'}")
    if args.canary:
        lost = report["invariants"]["I1_acknowledged_is_durable"]["lost_in_stream"]
        print(
            f"canary: {lost} acknowledged CALLs lost: the checker "
            + ("sees loss" if lost else "IS BLIND")
        )
        return 0 if lost > 0 else 1
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
