"""The pieces every benchmark runner ends with: README sections, ratio lines, finish_run."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from bench.fleet.model import Percentiles, SimResult
from bench.load import report
from bench.load.model import Plan, Report, Run, ServerResult
from bench.sections import write_section

ENV = {
    "cpu": "Test CPU",
    "cores": "2",
    "kernel": "6.0-test",
    "python": "CPython 3.11",
    "load_average_start": "0.10/0.10/0.10",
}


class Tiny(Report):
    value: float


def _render(result: Tiny) -> str:
    begin, end = SECTION.markers
    return "\n".join(
        [begin, f"value {result.value}", *report.machine_lines(result.environment), end]
    )


SECTION = report.Section("tiny", _render, Tiny, after=report.END)


def test_a_new_section_goes_after_the_named_marker_and_is_then_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{report.BEGIN}\nload\n{report.END}\n\n<!-- other:begin -->\nx\n")
    write_section(
        readme,
        "<!-- a:begin -->",
        "<!-- a:end -->",
        "<!-- a:begin -->\n1\n<!-- a:end -->",
        after=report.END,
    )
    text = readme.read_text()
    assert text.index(report.END) < text.index("<!-- a:begin -->") < text.index("<!-- other:")
    write_section(
        readme,
        "<!-- a:begin -->",
        "<!-- a:end -->",
        "<!-- a:begin -->\n2\n<!-- a:end -->",
        after=report.END,
    )
    text = readme.read_text()
    assert text.count("<!-- a:begin -->") == 1
    assert "\n2\n" in text
    assert "\n1\n" not in text


def test_ratios_put_csms_beside_each_reference() -> None:
    line = report.ratios("p99", {"csms": 2.0, "reference": 8.0, "echo": 1.0, "gone": None}, " ms")
    assert line == (
        "p99: csms 2 ms, reference 8 ms, echo 1 ms; "
        f"csms / reference 0.25{report.X}, csms / echo 2.00{report.X}."
    )
    assert report.ratios("x", {"csms": 1.0, "echo": 0.0}) == "x: csms 1, echo 0."


def test_finish_run_writes_json_section_and_end_load_average(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{report.BEGIN}\nload\n{report.END}\n")
    args = argparse.Namespace(json=tmp_path / "tiny.json", readme=readme, no_readme=False)
    result = Tiny(started="then", command="cmd", environment=dict(ENV), value=1.5)
    report.finish_run(result, args, SECTION)
    saved = msgspec.json.decode((tmp_path / "tiny.json").read_bytes(), type=Tiny)
    assert saved.value == 1.5
    assert saved.finished != ""
    assert "load_average_end" in saved.environment
    text = readme.read_text()
    assert text.index(report.END) < text.index("<!-- tiny:begin -->")
    assert "value 1.5" in text
    assert "rust ?" in text  # a version not recorded is said to be unknown, not left out


def _window(rate: float) -> SimResult:
    return SimResult(
        mode="throughput", stations=200, connected=200, booted=200,
        rate_limit_per_station=None, duration_s=30.0, answered=int(rate * 30),
        answered_per_s=rate, latency=Percentiles(), errors={}, sim_cpu=0.4,
        server_cpu={}, cpu_busy={},
    )  # fmt: skip


def test_the_bar_says_where_nats_server_ran() -> None:
    """The 40 % reading depends on nats-server's CPU (ADR 0007, session 11): the bar says it,
    and reads the sustained windows of the same run."""
    plan = Plan([200], 10.0, 2.0, 200, 100, 10, sustained_warmup_s=150.0, sustained_s=30.0)
    servers = [
        ServerResult("csms", "", [_window(48_000.0)], sustained=_window(46_000.0)),
        ServerResult("echo", "", [_window(120_000.0)], sustained=_window(100_000.0)),
    ]
    run = Run(started="then", command="cmd", environment=dict(ENV), plan=plan, servers=servers)
    for cpu, said in ((0, "nats-server on CPU 0 with csms"), (1, "CPU 1 beside the simulator")):
        lines = report.bar(msgspec.structs.replace(run, nats_cpu=cpu))
        shares = [line for line in lines if "of the echo ceiling" in line]
        assert len(shares) == 1
        assert said in shares[0]
        assert "46 % of the echo's sustained 100,000/s" in shares[0]
