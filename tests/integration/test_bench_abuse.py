"""Smoke test of the abuse benchmark (bench/abuse) at a tiny size: a real ``csms serve``, a small
legitimate load, every §5.6 attack once, and the run ends in a JSON and a README section. Only
that each attack happened and that its limit was seen acting is checked (no timings: speed and
latency budgets live in the benchmark's report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from bench.abuse.__main__ import ATTACKS
from bench.abuse.model import AbuseReport
from bench.abuse.report import SERVER_1009
from bench.run import ABUSE_SMOKE

ROOT = Path(__file__).resolve().parents[2]
README_STUB = "# bench\n\n<!-- burst:begin -->\nb\n<!-- burst:end -->\n\n<!-- plots:begin -->\n"


def _closes(counts: dict[str, int]) -> set[str]:
    """The close codes the attacker saw (``closed <code>``, ``closed no code``)."""
    return {k for k, v in counts.items() if v and (k[7:].isdigit() or k == "closed no code")}


def test_abuse_smoke_runs_every_attack_and_sees_each_limit(tmp_path: Path) -> None:
    readme, out = tmp_path / "README.md", tmp_path / "abuse.json"
    readme.write_text(README_STUB)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.abuse",
            *ABUSE_SMOKE,
            "--json",
            str(out),
            "--readme",
            str(readme),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = msgspec.json.decode(out.read_bytes(), type=AbuseReport)
    assert result.connected == result.stations
    runs = {run.attack: run for run in result.runs}
    assert list(runs) == ATTACKS
    seen: dict[str, dict[str, int]] = {}
    for name, run in runs.items():
        assert run.failure == "", (name, run.failure)
        assert run.baseline is not None
        assert run.during is not None
        assert run.observed is not None
        assert run.baseline.answered > 0, name  # the legitimate load ran in both windows
        assert set(run.after) == {"127.0.0.3", "127.0.0.1"}
        seen[name] = run.observed.counts
    # each limit acted on its attack
    assert seen["D1"]["refused at once"] > 0  # over 50 pending from one address
    assert runs["D1"].server_log["pending cap drops"] > 0  # the gateway's own account
    assert seen["D3"]["tls completed"] > 0
    assert seen["D3"]["tls refused or failed"] > 0
    assert seen["D7"]["frames sent"] > 0
    assert seen["D7"]["answers"] > 0
    assert _closes(seen["D8"]) == {"closed 1008"}
    assert runs["D8"].observed is not None
    assert runs["D8"].observed.times_s["pongs per connection"].max <= 12  # burst 10, then 2/s
    assert seen["D11"]["waves"] > 0
    assert seen["D11"]["closed 1008"] > 0
    assert runs["D11"].server_log["replaced sessions"] > 0
    assert _closes(seen["D12"]) == {"closed 1008"}
    assert runs["D12"].observed is not None
    assert runs["D12"].observed.times_s["answers before close"].max <= 21
    # the server closed every D4 connection with 1009 (its own log), the attacker read 1009;
    # a rare "closed no code" is the attacker's race with the reset (report._every_time_1009)
    assert "closed 1009" in _closes(seen["D4"])
    assert _closes(seen["D4"]) <= {"closed 1009", "closed no code"}
    assert seen["D4"].get("closed no code", 0) <= max(1, seen["D4"]["connections"] // 100)
    assert runs["D4"].server_log[SERVER_1009] == seen["D4"]["connections"]
    assert seen["D9"]["CALLERROR FormationViolation"] > 0
    text = readme.read_text()
    assert text.index("<!-- burst:end -->") < text.index("<!-- abuse:begin -->")
    assert text.index("<!-- abuse:end -->") < text.index("<!-- plots:begin -->")
    for name in ATTACKS:
        assert f"| {name} |" in text
