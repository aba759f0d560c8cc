"""``python -m tests.faults``: the fault battery from the command line (``make faults``).

Exit status 0 when every run came out as expected: the fault runs with all invariants holding,
the canary run (``--canary``) with lost acknowledged CALLs reported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from tests.faults.battery import CANARY, FAULTS, Battery, BatteryConfig, summary
from tests.faults.table import render


def _seeds(text: str) -> list[int]:
    """``"7"`` or ``"1-20"``."""
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _suite(args: argparse.Namespace) -> int:
    """Every run, even after a failing one; 0 only if all came out as expected. Per seed: one
    node and the 3-node R3 cluster with every fault (``--alternate``: one node on the 1st,
    3rd, ... seed, the cluster on the others); the canary at every ``--canary-every``-th
    seed (half the duration). The table of all runs goes to ``--out/results.md``."""
    seeds = _seeds(args.seeds) if args.seeds else [args.seed]
    out = Path(args.out)
    runs: list[tuple[str, Path, bool, list[str]]] = []
    for index, seed in enumerate(seeds):
        common = ["--stations", str(args.stations), "--seed", str(seed)]
        common += ["--interval", str(args.interval), "--faults", args.faults]
        base = out / f"seed{seed}" if args.seeds else out
        if not args.alternate or index % 2 == 0:
            runs.append((f"seed {seed}, 1 node", base / "single", False, [*common]))
        if not args.alternate or index % 2 == 1:
            runs.append(
                (
                    f"seed {seed}, 3 nodes R3",
                    base / "cluster",
                    False,
                    [*common, "--nats-nodes", "3"],
                )
            )
        if index % args.canary_every == 0:
            runs.append((f"seed {seed}, canary", base / "canary", True, [*common, "--canary"]))
    codes = {}
    for name, directory, canary, argv in runs:
        duration = args.duration / 2 if canary else args.duration
        print(f"== {name}", flush=True)
        codes[name] = main([*argv, "--duration", str(duration), "--out", str(directory)])
        out.mkdir(parents=True, exist_ok=True)
        render(out, [(n, d, c) for n, d, c, _ in runs if n in codes])
    print(render(out, [(n, d, c) for n, d, c, _ in runs]))
    failed = [k for k, v in codes.items() if v]
    print(f"== suite: {len(codes) - len(failed)}/{len(codes)} as expected; failed: {failed}")
    return 0 if not failed else 1


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
    parser.add_argument(
        "--seeds", help="with --suite: a seed range such as 1-20, each under --out/seed<N>/"
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="with --seeds: one node and the cluster on alternate seeds instead of both on each",
    )
    parser.add_argument(
        "--canary-every", type=int, default=5, help="with --seeds: the canary every N-th seed"
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
