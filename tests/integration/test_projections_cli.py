"""``csms query``, ``csms report`` and ``csms projections rebuild`` as real processes (each its
own chDB engine over the test's data dir)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import nats
from nats.js import JetStreamContext

from csms.analytics_cli import render
from streams import envelope
from streams.embedded import EmbeddedNats
from streams.projections.projector import DURABLE
from streams.provision import StreamSettings, ensure_stream
from streams.subjects import STREAM, subject
from tests.projection_events import ScriptedStation


async def csms(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "csms", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_rebuild_then_query_and_report(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, StreamSettings())
    st = ScriptedStation("CP-CLI")
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"}
    stop = {"transactionId": 1, "meterStop": 1500, "timestamp": "2026-01-01T11:00:00Z"}
    for events in (
        [st.connected()],
        st.answered("StartTransaction", start, {"transactionId": 1}),
        st.answered("StopTransaction", stop, {}),
    ):
        await js.publish(subject("CP-CLI"), envelope.encode_many(events))
    await nc.close()
    data = ["--data-dir", str(tmp_path)]

    rebuilt = await csms("projections", "rebuild", "--nats-url", nats_server.url, *data)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "from 3 messages" in rebuilt.stdout

    counted = await csms(
        "query", "SELECT count() AS n FROM events FINAL", "--format", "json", *data
    )
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout) == [{"n": 5}]

    energy = await csms("report", "energy-per-station-per-day", "--format", "csv", *data)
    assert energy.stdout.splitlines() == [
        "station_id,day,sessions,energy_wh",
        "CP-CLI,2026-01-01,1,1500.0",
    ]

    refused = await csms("query", "DROP TABLE events", *data)
    assert refused.returncode == 2
    assert "read-only" in refused.stderr


def test_render_formats() -> None:
    names, rows = ["a", "b"], [(1, None), (22, "x,y")]
    assert render(names, rows, "table").splitlines() == [
        "a   b",
        "--  ---",
        "1",
        "22  x,y",
        "(2 rows)",
    ]
    assert render(names, rows, "csv").splitlines() == ["a,b", "1,", '22,"x,y"']
    assert json.loads(render(names, rows, "json")) == [{"a": 1, "b": None}, {"a": 22, "b": "x,y"}]


async def projected(js: JetStreamContext) -> bool:
    """Everything in the stream delivered to the projector and acknowledged by it."""
    mine = [c for c in await js.consumers_info(STREAM) if c.name.startswith(f"{DURABLE}-")]
    if not mine:  # the projector has not created its consumer (csms-projections-<id>) yet
        return False
    (info,) = mine
    stream = await js.stream_info(STREAM)
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    return bool(info.num_ack_pending == 0 and floor >= stream.state.last_seq)


async def test_the_projector_runs_alone_and_stops_on_sigterm(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """``csms projections run``: the projector in its own process (gateways with
    projections = false); SIGTERM stops it after its last batch; the rows are there."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "projections", "run",
        "--nats-url", nats_server.url, "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert b"csms: projecting" in line
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js, StreamSettings())
        st = ScriptedStation("CP-ALONE")
        for events in ([st.connected()], [st.disconnected()]):
            await js.publish(subject("CP-ALONE"), envelope.encode_many(events))
        deadline = asyncio.get_running_loop().time() + 120
        while not await projected(js):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await nc.close()
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 60)
    assert code == 0
    counted = await csms("query", "SELECT count() AS n FROM events FINAL", "--format", "json",
                         "--data-dir", str(tmp_path))  # fmt: skip
    assert json.loads(counted.stdout) == [{"n": 2}]
