"""Bulk commands to many simulated stations, the command events on the stream, and /metrics."""

from __future__ import annotations

import asyncio
import time

import msgspec
import picows
import pytest

from csms import app
from csms.domain.commands import CommandRecorded
from tests.integration.api_support import AnsweringStation, api_client, until
from tests.integration.conftest import read_all_events, ws_url
from tests.integration.station import Station

STATIONS = 1000


async def test_bulk_to_many_stations(csms: app.Running) -> None:
    ids = [f"BULK-{n:04d}" for n in range(STATIONS)]
    stations: list[AnsweringStation] = []
    started = time.monotonic()
    try:
        for batch in range(0, STATIONS, 25):  # the gateway caps pending handshakes per address
            stations += await asyncio.gather(
                *(
                    AnsweringStation.connect(ws_url(csms, i), "ocpp1.6")
                    for i in ids[batch : batch + 25]
                )
            )
        async with api_client(f"http://127.0.0.1:{csms.settings.api_port}") as client:

            async def all_connected() -> bool:
                page = await client.get(
                    "/api/v1/stations", params={"connected": True, "limit": 1000}
                )
                return len(page.json()["items"]) == STATIONS

            await until(all_connected, timeout_s=30)
            connected_s = time.monotonic() - started
            body = {"station_ids": [*ids, "BULK-missing"], "payload": {"type": "Soft"}, "wait": 20}
            sent = time.monotonic()
            response = await client.post("/api/v1/commands/Reset", json=body)
            bulk_s = time.monotonic() - sent
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["total"] == STATIONS + 1
            assert result["answered"] == STATIONS
            assert [r["station_id"] for r in result["results"]] == body["station_ids"]
            assert result["results"][-1]["http_status"] == 404
            assert all(s.calls == [("Reset", {"type": "Soft"})] for s in stations)
            print(
                f"\n{STATIONS} stations connected in {connected_s:.1f} s; bulk Reset {bulk_s:.2f} s"
            )

            queued = await client.post(
                "/api/v1/commands/ClearCache", json={"station_ids": ids, "wait": 0}
            )
            assert queued.status_code == 200, queued.text
            items = queued.json()["results"]
            assert {(r["http_status"], r["status"]) for r in items} == {(202, "pending")}
            await until(lambda: all(len(s.calls) == 2 for s in stations), timeout_s=60)
            for item in items[:: STATIONS // 10]:

                async def answered(command_id: str = item["command_id"]) -> bool:
                    polled = await client.get(f"/api/v1/commands/{command_id}")
                    return bool(polled.json()["status"] == "answered")

                await until(answered)
            for s in stations:
                s.calls.clear()

            invalid = await client.post(
                "/api/v1/commands/Reset", json={"station_ids": ids[:3], "payload": {"type": "x"}}
            )
            assert [r["http_status"] for r in invalid.json()["results"]] == [422, 422, 422]
            assert all(s.calls == [] for s in stations[:3])
    finally:
        await asyncio.gather(*(s.close() for s in stations))


async def test_commands_are_events_and_metrics(csms: app.Running) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-EVT"), "ocpp1.6")
    try:
        async with api_client(f"http://127.0.0.1:{csms.settings.api_port}") as client:

            async def connected() -> bool:
                r = await client.get("/api/v1/stations/CP-EVT")
                return r.status_code == 200 and bool(r.json()["connected"])

            await until(connected)
            with pytest.raises(picows.WSError):  # no common subprotocol: refused with 400
                await Station.connect(ws_url(csms, "CP-NONE"), "ocpp0.1")
            response = await client.post("/api/v1/stations/CP-EVT/commands/ClearCache", json={})
            command_id = response.json()["command_id"]
            metrics = (await client.get("/metrics")).text
            assert 'csms_commands_total{action="ClearCache",outcome="answered"}' in metrics
            assert 'route="/api/v1/stations/{station_id}/commands/{action}"' in metrics
            assert "CP-EVT" not in metrics  # never a station id as a label
            node = csms.gateway.session_config.node_id  # one process: its own figures only
            assert f'csms_gateway_up{{node="{node}"}} 1.0' in metrics
            assert f'csms_gateway_stations{{node="{node}"}} 1.0' in metrics
            stored = next(
                line for line in metrics.splitlines() if line.startswith("csms_events_stored_total")
            )
            assert float(stored.split()[1]) >= 2  # connected, and the CALL with its answer
            assert f'csms_events_in_flight{{node="{node}"}} ' in metrics
            assert f'csms_event_store_retries_total{{node="{node}"}} 0.0' in metrics
            assert f'csms_gateway_sessions_opened_total{{node="{node}"}} 1.0' in metrics
            refused = f'csms_gateway_upgrades_refused_total{{node="{node}",status="400"}} 1.0'
            assert refused in metrics
            assert f'csms_gateway_replacements_total{{node="{node}"}} 0.0' in metrics
    finally:
        await station.close()
    events = await read_all_events(csms.nats_url, "CP-EVT")
    [event] = [e for e in events if e.kind == "command"]  # beside the frames it caused
    assert event.event_id == f"cmd-{command_id}"
    assert event.action == "ClearCache"
    record = msgspec.json.decode(event.raw, type=CommandRecorded)
    assert record.requested_by == "anonymous"
    assert record.outcome.outcome == "answered"
    assert record.outcome.result == {"status": "Accepted"}
    frames = [(e.direction, e.message_type, e.action) for e in events if e.kind == "frame"]
    assert ("out", 2, "ClearCache") in frames
