"""The live-WebSocket fuzzer (tests/fuzz_wire.py) for a few hundred frames: well-formed replies
only, documented closes only, every probe answered, the gateway still serving afterwards."""

from __future__ import annotations

from csms import app
from tests.fuzz_wire import fuzz


async def test_fuzzed_frames_over_the_wire_get_well_formed_answers(csms: app.Running) -> None:
    report = await fuzz(csms, seconds=60, seed=7, max_frames=300)
    assert report.frames == 300
    assert report.findings == [], report.findings[:5]
    assert sum(report.replies.values()) > 0  # the run did reach the handlers and the checks
