"""``csms bench <name> [options]``: one benchmark of bench/, each run as ``python -m <module>``
(its own process: the runners pin themselves and their children to cores).

    csms bench load [--quick|--full]     csms vs the ocpp-package reference vs an echo ceiling
    csms bench throughput ...            the same (the throughput scenario is its core)
    csms bench profile [--version V]     csms under cProfile and perf, the throughput load
    csms bench boot-storm [--stations N] 10,000 stations booting at once, same three servers
    csms bench steady [--stations N]     stations at realistic rates: CPU, memory, latency
    csms bench burst [--stations N]      clock-aligned meter values, all in the same second
    csms bench micro [--quick]           per-frame parse + validate
    csms bench projections [...]         projector ingest, reports over a generated history
    csms bench lag [--rates ...]         end-to-end lag: station send until the row is in ClickHouse
    csms bench abuse [--attacks D1,...]  §5.6 attacks one at a time: other stations' latency
    csms bench plots                     PNG plots of bench/results/*.json, README section
    csms bench all [--smoke|--full]      every scenario above in turn (not micro: make bench-micro)

``all --smoke`` is a small run of everything that proves the harness works: its JSON, README and
plots go to .csms/bench-smoke/ (the README there is a copy of bench/README.md), never over the
published ones. ``all`` runs the sizes each runner has by default, ``all --full`` the issue's
(20,000 idle and steady stations).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "load": "bench.load",
    "throughput": "bench.load",
    "profile": "bench.load.profile",
    "boot-storm": "bench.load.boot_storm",
    "steady": "bench.load.steady",
    "burst": "bench.load.burst",
    "clock-aligned-burst": "bench.load.burst",
    "micro": "bench.micro",
    "projections": "bench.projections",
    "lag": "bench.load.lag",
    "abuse": "bench.abuse",
    "plots": "bench.plots",
}
SMOKE_DIR = ROOT / ".csms" / "bench-smoke"
ABUSE_SMOKE = ["--stations", "20", "--rate", "2", "--attack-s", "2", "--baseline-s", "1"]
ABUSE_SMOKE += ["--settle-s", "0.5", "--warmup-s", "0.5"]
PLANS: dict[str, list[tuple[str, list[str]]]] = {
    "--smoke": [
        ("load", ["--smoke"]),
        ("profile", ["--stations", "10", "--duration", "2", "--warmup", "0.5"]),
        ("boot-storm", ["--stations", "200", "--concurrency", "0"]),
        ("steady", ["--stations", "50", "--duration", "5"]),
        ("burst", ["--stations", "50", "--duration", "16"]),
        ("projections", ["--quick"]),
        ("lag", ["--quick"]),
        ("abuse", [*ABUSE_SMOKE]),
    ],
    "": [
        ("load", []),
        ("profile", []),
        ("boot-storm", []),
        ("steady", []),
        ("burst", []),
        ("projections", []),
        ("lag", []),
        ("abuse", []),
    ],
    "--full": [
        ("load", ["--full"]),
        ("profile", []),
        ("boot-storm", []),
        ("steady", ["--stations", "20000", "--duration", "300"]),
        ("burst", []),
        ("projections", []),
        ("lag", []),
        ("abuse", []),
    ],
}
OWN_OUTPUT = {"load", "profile", "boot-storm", "steady", "burst", "lag", "abuse"}
"""Runners that take --json and --readme (the smoke run sends them to SMOKE_DIR)."""
JSON_NAMES = {"boot-storm": "boot_storm"}


def _call(name: str, argv: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", MODULES[name], *argv], cwd=ROOT)


def run_all(size: str) -> int:
    """Every scenario in turn; the first failure stops the run (its exit status is returned)."""
    plan = PLANS[size]
    if size == "--smoke":
        SMOKE_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "bench" / "README.md", SMOKE_DIR / "README.md")
    for step, (name, argv) in enumerate(plan, 1):
        if size == "--smoke" and name in OWN_OUTPUT:
            out = SMOKE_DIR / f"{JSON_NAMES.get(name, name)}.json"
            argv = [*argv, "--json", str(out), "--readme", str(SMOKE_DIR / "README.md")]
        print(f"== csms bench all {size}: {step}/{len(plan)} {name} ==", file=sys.stderr)
        code = _call(name, argv)
        if code != 0:
            print(f"csms bench all: {name} failed with exit status {code}", file=sys.stderr)
            return code
    if size == "--smoke":
        print(f"csms bench all --smoke: results in {SMOKE_DIR}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "all":
        size = argv[1] if len(argv) > 1 else ""
        if size not in PLANS or len(argv) > 2:
            print("usage: csms bench all [--smoke|--full]", file=sys.stderr)
            return 2
        return run_all(size)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in MODULES:
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return _call(argv[0], argv[1:])
