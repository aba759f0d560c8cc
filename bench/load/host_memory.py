"""The machine's memory in the state of a server that has run for a while.

On a virtual machine with *free page reporting* (virtio-balloon; this machine's kernel reports
free 2 MiB blocks to its host: ``/sys/module/page_reporting``), memory the guest leaves free is
handed back to the host, and the first write to such a page makes the host back it again. Here
that first write costs about 11 µs per 4 KiB page, against about 1.4 µs for a page the host
still backs (``python -m bench.load.host_memory``, which measures it). A benchmark that starts
on a machine with most of its memory free therefore pays that price for every page the
stream's page cache grows into, and a store-nothing server pays nothing: csms's sustained rate
fell by 15-20 % in its first minutes here, all of it in nats-server's writes (bench/README.md).

A server that has run for a while has its memory full (page cache) and takes new pages from
reclaim, pages the host already backs. :func:`fill_page_cache` puts the machine in that state
before a sustained window: it writes a scratch file over the free memory (clean page cache the
kernel reclaims as the stream grows), which is removed afterwards.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sys
import time
from pathlib import Path

from bench.load.model import Fill

PAGE = 4096
GIB = 1 << 30
CHUNK = 16 << 20
LEAVE_FREE = 1 * GIB
"""Left free after the fill: the servers' and the simulator's own growth."""
DISK_RESERVE = 40 * GIB
"""Disk left to the run's streams after the fill (a sustained window writes about 10 GB)."""
REPORTING = Path("/sys/module/page_reporting/parameters")


def free_page_reporting() -> str:
    """Whether this kernel reports free pages to its host, for the report's environment."""
    reported = REPORTING / "reported_kib"
    if not reported.exists():
        return "off (no page_reporting module)"
    order = (REPORTING / "page_reporting_order").read_text().strip()
    kib = int(reported.read_text().strip() or 0)
    return f"on (order {order}, {kib / (1 << 20):,.0f} GiB reported since boot)"


def mem_free() -> int:
    """MemFree in bytes (free pages, page cache not counted)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemFree:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemFree in /proc/meminfo")


def fill_page_cache(path: Path) -> Fill:
    """Write ``path`` over the free memory (bounded by the free disk) and fsync it, so its pages
    are clean page cache the kernel reclaims as other files grow."""
    started = time.perf_counter()
    free = mem_free()
    by_memory = max(free - LEAVE_FREE, 0)
    by_disk = max(shutil.disk_usage(path.parent).free - DISK_RESERVE, 0)
    size = min(by_memory, by_disk) // CHUNK * CHUNK
    zeros = bytes(CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // CHUNK):
            os.write(fd, zeros)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Fill(
        size,
        time.perf_counter() - started,
        free,
        "memory" if by_memory <= by_disk else "disk",
    )


def first_touch(gib: int) -> list[float]:
    """ns per 4 KiB page of the first write to ``gib`` GiB of new anonymous memory, per GiB."""
    costs = []
    area = mmap.mmap(-1, gib * GIB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        area.madvise(mmap.MADV_NOHUGEPAGE)
        for g in range(gib):
            start = time.perf_counter_ns()
            for offset in range(g * GIB, (g + 1) * GIB, PAGE):
                area[offset] = 1
            costs.append((time.perf_counter_ns() - start) / (GIB // PAGE))
    finally:
        area.close()
    return costs


def main(argv: list[str]) -> int:
    """``python -m bench.load.host_memory [GIB]``: the first-touch cost over GIB GiB (default:
    free memory minus 2 GiB), once, then again over the same amount."""
    gib = int(argv[0]) if argv else max(int((mem_free() - 2 * GIB) // GIB), 1)
    print(f"free page reporting: {free_page_reporting()}; MemFree {mem_free() / GIB:.1f} GiB")
    for attempt in ("first", "again"):
        costs = first_touch(gib)
        line = " ".join(f"{c / 1000:.1f}" for c in costs)
        print(f"{attempt}: µs per page for each GiB of {gib}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
