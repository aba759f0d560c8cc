"""Smoke tests of the benchmark harness (bench/load) at a tiny size: every server starts, the fleet
simulator's throughput mode drives each in OCPP 1.6 and 2.0.1, and the run ends in a JSON, a
README section and the plots; the profile run names csms's functions. Numbers are not checked
(speed targets live in the benchmarks), only that each scenario was measured without errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from bench.load.model import Run
from bench.load.profile import ProfileReport

ROOT = Path(__file__).resolve().parents[2]
README_STUB = "# bench\n\n<!-- load:begin -->\nold\n<!-- load:end -->\n\n<!-- later:begin -->\n"


def _bench(module: str, out: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark writing its JSON to ``out`` (the plots beside it, named after it) and
    its section into the README beside it."""
    readme = out.parent / "README.md"
    done = subprocess.run(
        [sys.executable, "-m", module, *argv, "--json", str(out), "--readme", str(readme)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_load_smoke_measures_every_server_in_16_and_201(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README_STUB)
    done = _bench("bench.load", tmp_path / "load.json", "--smoke", "--versions", "1.6,2.0.1")
    run = msgspec.json.decode((tmp_path / "load.json").read_bytes(), type=Run)
    assert [s.name for s in run.servers] == ["csms", "reference", "echo"]
    for server in run.servers:
        assert server.failures == []
        assert sorted(r.version for r in server.throughput) == ["1.6", "2.0.1"]
        for r in server.throughput:
            assert r.errors == {}, (server.name, r.version, r.errors)
            assert r.booted == r.connected == r.stations
            assert r.answered > 0
        assert server.half_rate is not None
        assert server.half_rate.answered > 0
        assert server.sustained is not None
        assert server.sustained.answered > 0
        assert server.idle is not None
        assert server.idle.connected == server.idle.stations
    group = run.servers[0].idle_group  # csms --workers 2, two simulator processes
    assert group is not None
    assert group.connected == group.stations == 20
    assert sorted(group.rss_after_kb) == ["csms", "csms-w1", "nats-server"]
    readme = (tmp_path / "README.md").read_text()
    assert "\nold\n" not in readme
    assert "| 2.0.1 | TransactionEvent |" in readme
    assert readme.index("<!-- load:end -->") < readme.index("<!-- later:begin -->")
    assert (tmp_path / "load_throughput_latency.png").stat().st_size > 0
    # 16 steps: idle, 2 versions, sustained, half rate, per server; csms's --workers idle
    assert "[17/17" not in done.stderr
    assert "[16/16" in done.stderr
    assert "(the 2 csms processes of `--workers 2`) at N = 20 of 20" in readme
    assert "### Sustained: 1.6 MeterValues minutes into the run" in readme


def test_profile_smoke_names_the_gateways_functions(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README_STUB)
    argv = ["--stations", "5", "--duration", "1", "--warmup", "0.3", "--passes", "cprofile"]
    _bench("bench.load.profile", tmp_path / "profile.json", *argv)
    profile = msgspec.json.decode((tmp_path / "profile.json").read_bytes(), type=ProfileReport)
    (cprofile,) = profile.passes
    assert cprofile.failure == ""
    assert cprofile.answered_per_s > 0
    assert any(row.what.startswith("csms/gateway/") for row in cprofile.rows)
    readme = (tmp_path / "README.md").read_text()
    assert "| function | self % | cumulative % | calls |" in readme
    # the profile section goes right after the load section whose bars it explains
    load_end = readme.index("<!-- load:end -->")
    assert load_end < readme.index("<!-- profile:begin -->") < readme.index("<!-- later:begin -->")
