"""``csms bench <name> [options]``: one benchmark of bench/, each run as ``python -m <module>``
(its own process: the runners pin themselves and their children to cores).

    csms bench load [--quick|--full]     csms vs the ocpp-package reference vs an echo ceiling
    csms bench boot-storm [--stations N] 10,000 stations booting at once, same three servers
    csms bench steady [--stations N]     stations at realistic rates: CPU, memory, latency
    csms bench burst [--stations N]      clock-aligned meter values, all in the same second
    csms bench micro [--quick]           per-frame parse + validate
    csms bench projections [...]         projector ingest and lag
    csms bench profile [--version V]     csms under cProfile and perf, the throughput load
    csms bench plots                     PNG plots of bench/results/*.json, README section
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "load": "bench.load",
    "throughput": "bench.load",
    "boot-storm": "bench.load.boot_storm",
    "steady": "bench.load.steady",
    "burst": "bench.load.burst",
    "clock-aligned-burst": "bench.load.burst",
    "micro": "bench.micro",
    "projections": "bench.projections",
    "profile": "bench.load.profile",
    "plots": "bench.plots",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in MODULES:
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return subprocess.call([sys.executable, "-m", MODULES[argv[0]], *argv[1:]], cwd=ROOT)
