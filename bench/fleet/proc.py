"""What the simulator reads about processes and cores from /proc (Linux), and its own file limit."""

from __future__ import annotations

import os
import resource

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = ("cpu0", "cpu1")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cores_busy() -> list[float]:
    """Busy seconds of cpu0 and cpu1 since boot (user+nice+system+irq+softirq+steal)."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name in CORES:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy[name] = (user + nice + system + irq + softirq + steal) / CLK_TCK
    return [busy.get(name, 0.0) for name in CORES]


def rss_kb(pid: int) -> int:
    """VmRSS of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def raise_nofile(wanted: int) -> None:
    """Up to the hard limit (raising that needs CAP_SYS_RESOURCE, which a container may lack)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
