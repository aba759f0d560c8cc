"""Faults under traffic: nothing a station got an answer for may be missing from the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from csms import app
from streams.embedded import EmbeddedNats, free_port
from tests.integration.conftest import loopback_settings, read_all_events, ws_url
from tests.integration.station import Station

STATIONS = 10


async def _traffic(station: Station, name: str, answered: list[str], stop: asyncio.Event) -> int:
    """Heartbeats back to back; a CALL without an answer is retried with a new id (as stations
    do after their timeout). Returns how many CALLs were sent."""
    sent = 0
    while not stop.is_set():
        unique_id = f"{name}-{sent}"
        sent += 1
        station.send_text(json.dumps([2, unique_id, "Heartbeat", {}]))
        with contextlib.suppress(TimeoutError):
            while True:
                frame = await station.receive(timeout_s=3)
                if frame[1] == unique_id:
                    answered.append(unique_id)
                    break
    return sent


async def test_kill_9_of_nats_under_traffic_loses_nothing_answered(tmp_path: Path) -> None:
    store, port = tmp_path / "nats", free_port()
    server = EmbeddedNats(store, port=port)
    await server.start()
    running = await app.start(loopback_settings(tmp_path, server.url, "fault"))
    stations = [await Station.connect(ws_url(running, f"F{i}"), "ocpp1.6") for i in range(STATIONS)]
    answered: list[list[str]] = [[] for _ in stations]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_traffic(s, f"F{i}", answered[i], stop)) for i, s in enumerate(stations)
    ]
    try:
        await asyncio.sleep(1.0)
        before = sum(map(len, answered))
        await server.kill()
        await asyncio.sleep(1.0)
        during = sum(map(len, answered))
        server = EmbeddedNats(store, port=port)
        await server.start()
        await asyncio.sleep(3.0)
        stop.set()
        sent = await asyncio.gather(*tasks)
        after = sum(map(len, answered))
        assert before > 0, "no traffic before the kill"
        assert after > during, "no answers after NATS came back"
        for i, station in enumerate(stations):
            await station.close()
            events = await read_all_events(server.url, f"F{i}")
            stored_calls = {
                e.unique_id for e in events if e.direction == "in" and e.message_type == 2
            }
            missing = set(answered[i]) - stored_calls
            assert not missing, f"answered but not stored: {sorted(missing)[:5]}"
            assert len({e.event_id for e in events}) == len(events), "duplicate events"
            assert len(answered[i]) <= sent[i]
    finally:
        stop.set()
        await running.stop()
        await server.stop()
