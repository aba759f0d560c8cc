"""bench.load.host_memory's page-cache fill (sized by free memory and free disk) and how the
load report reads a storing server's two sustained windows around it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.load import host_memory, report
from bench.load.model import Fill, Plan, Run, ServerResult, SimResult

MIB = 1 << 20


def test_the_fill_covers_free_memory_minus_what_it_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_memory, "mem_free", lambda: host_memory.LEAVE_FREE + 40 * MIB)
    fill = host_memory.fill_page_cache(tmp_path / "fill")
    # whole chunks only: 40 MiB over what is left free is two 16 MiB chunks
    assert fill.bytes == 2 * host_memory.CHUNK
    assert (tmp_path / "fill").stat().st_size == fill.bytes
    assert fill.limited_by == "memory"
    assert fill.free_before == host_memory.LEAVE_FREE + 40 * MIB


def test_the_fill_leaves_the_streams_their_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_memory, "mem_free", lambda: 64 * host_memory.GIB)
    real = shutil.disk_usage(tmp_path)
    room = real._replace(free=host_memory.DISK_RESERVE + host_memory.CHUNK)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: room)
    fill = host_memory.fill_page_cache(tmp_path / "fill")
    assert fill.bytes == host_memory.CHUNK
    assert fill.limited_by == "disk"


def test_no_room_fills_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_memory, "mem_free", lambda: host_memory.LEAVE_FREE // 2)
    fill = host_memory.fill_page_cache(tmp_path / "fill")
    assert fill.bytes == 0
    assert (tmp_path / "fill").stat().st_size == 0


def test_free_page_reporting_is_named_either_way() -> None:
    state = host_memory.free_page_reporting()
    assert state.startswith(("on (order ", "off ("))


def _sim(rate: float) -> SimResult:
    latency: dict[str, Any] = {"count": 1, "p50": 1, "p90": 1, "p99": 1, "p999": 1, "max": 1}
    return msgspec.convert(
        {
            "mode": "throughput",
            "stations": 200,
            "connected": 200,
            "booted": 200,
            "rate_limit_per_station": None,
            "duration_s": 30.0,
            "answered": int(rate * 30),
            "answered_per_s": rate,
            "latency": latency,
            "errors": {},
            "sim_cpu": 0.3,
            "server_cpu": {"x": 0.9},
            "cpu_busy": {"cpu0": 0.95},
        },
        SimResult,
    )


def _run() -> Run:
    ours = ServerResult("csms", "csms", throughput=[_sim(45_000)])
    ours.sustained_as_found, ours.sustained = _sim(30_000), _sim(42_000)
    ours.fill = Fill(16 << 30, 40.0, 17 << 30, "memory")
    ref = ServerResult("reference", "ref", throughput=[_sim(1_000)], sustained=_sim(1_000))
    echo = ServerResult("echo", "echo", throughput=[_sim(100_000)], sustained=_sim(100_000))
    plan = Plan([200], 10, 2, 200, 100, 10, sustained_warmup_s=150, sustained_s=30)
    return Run(started="s", command="c", environment={}, plan=plan, servers=[ours, ref, echo])


def test_the_bar_reads_the_filled_window_and_shows_the_one_as_found() -> None:
    lines = "\n".join(report.bar(_run()))
    assert "sustained: 42,000/s" in lines
    assert (
        "200 stations, memory in use, nats-server on CPU 0 with csms (best short window: 45,000/s)"
        in lines
    )
    x = report.X
    assert f"= 42.0{x} the reference's sustained 1,000/s; memory as found: 30,000/s" in lines
    assert f"30,000/s = 30.0{x} |" in lines
    assert "= 42 % of the echo's sustained 100,000/s; memory as found: 30 %" in lines


def test_the_sustained_table_has_both_windows_of_the_storing_server() -> None:
    table = "\n".join(report.sustained_table(_run()))
    assert "| csms | as found | 200 | 150 | 30 | 30,000 | 45,000 | 67 % |" in table
    assert "| csms | in use | 200 | 150 | 30 | 42,000 | 45,000 | 93 % |" in table
    assert "| reference | as found |" in table
    assert "csms: 16.0 GiB in 40 s (MemFree before: 17.0 GiB; limited by memory)" in table
