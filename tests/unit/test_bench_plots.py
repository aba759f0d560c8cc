"""bench.plots renders valid PNGs from a tiny synthetic results directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENV = {"cpu": "Test CPU", "cores": "2", "kernel": "6.0-test"}


def _latency(p99: float) -> dict[str, float]:
    return {"count": 10, "p50": p99 / 2, "p90": p99, "p99": p99, "p999": p99, "max": p99}


def _write(results: Path) -> None:
    servers = []
    for name, rate in (("csms", 20_000.0), ("reference", 1_000.0), ("echo", 100_000.0)):
        throughput = [
            {"stations": n, "answered_per_s": rate, "latency": _latency(n / 10)} for n in (50, 200)
        ]
        servers.append(
            {
                "name": name,
                "throughput": throughput,
                "half_rate": {"stations": 200, "latency": _latency(5.0)},
                "idle": {
                    "connected": 1000,
                    "rss_before_kb": {name: 40_000},
                    "rss_after_kb": {name: 56_000},
                },
            }
        )
    load = {"started": "2026-01-01 00:00:00 UTC", "environment": ENV, "servers": servers}
    runs: list[dict[str, Any]] = [
        {
            "server": name,
            "rss_idle_kb": {name: 30_000},
            "result": {
                "answered_per_s": 200.0,
                "latency": _latency(20.0),
                "server_cpu": {name: 0.1},
                "server_rss_kb": {name: 50_000},
                "boot": {"connected": 1000, "accepted": 1000, "all_accepted_s": 2.0},
                "duration_s": 30.0,
            },
        }
        for name in plots.SERVERS
    ]
    steady: dict[str, Any] = {
        "started": "2026-01-01 00:10:00 UTC",
        "environment": ENV,
        "stations": 1000,
    }
    steady["runs"] = runs
    storm_runs: list[dict[str, Any]] = [
        dict(r, transport="ws", concurrency=c) for r in runs for c in (0, 100)
    ]
    storm_runs[0]["result"] = dict(
        runs[0]["result"], boot={"connected": 900, "accepted": 900, "all_accepted_s": None}
    )
    storm: dict[str, Any] = {
        "started": "2026-01-01 00:20:00 UTC",
        "environment": ENV,
        "stations": 1000,
    }
    storm["runs"] = storm_runs
    lag: dict[str, Any] = {"started": "2026-01-01 00:30:00 UTC", "environment": ENV}
    lag["rows"] = [
        {"rate": r, "lag_ms": {"p50": 500, "p99": 1500, "max": 2000}} for r in (100, 1000)
    ]
    for name, data in (("load", load), ("steady", steady), ("boot_storm", storm), ("lag", lag)):
        (results / f"{name}.json").write_text(json.dumps(data))


def test_render_writes_valid_pngs_and_readme_section(tmp_path: Path) -> None:
    _write(tmp_path)
    pngs = plots.render(tmp_path)
    names = {p.name for p in pngs}
    assert names == {
        "load_throughput_latency.png",
        "steady.png",
        "memory_per_connection.png",
        "boot_storm.png",
        "lag.png",
    }
    for png in pngs:
        assert png.parent == tmp_path
        assert png.read_bytes()[:8] == PNG_MAGIC
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n")
    plots.render_safely(tmp_path, readme)
    text = readme.read_text()
    assert plots.BEGIN in text
    assert plots.END in text
    assert "![lag](lag.png)" in text
    assert "Test CPU" in text
    assert "2026-01-01 00:30:00 UTC" in text


def test_a_malformed_results_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "load.json").write_text(json.dumps({"servers": [{"name": "csms"}]}))
    pngs = plots.render(tmp_path)
    assert "load_throughput_latency.png" not in {p.name for p in pngs}
