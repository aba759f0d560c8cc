"""Real processes: two ``csms serve`` gateways and one ``csms api`` on one nats-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from streams.embedded import EmbeddedNats
from tests.integration.api_support import (
    AnsweringStation,
    Reply,
    api_client,
    csms_cli,
    start_api,
    start_gateway,
    until,
    wait_connected,
)


def silent(action: str, payload: dict[str, Any]) -> Reply:
    return None


async def test_two_gateways_one_api(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    gateways = [
        await start_gateway(tmp_path / "a", nats_server.url),
        await start_gateway(tmp_path / "b", nats_server.url),
    ]
    api = await start_api(nats_server.url)
    for process in (*gateways, api):
        assert "the API is OPEN" in process.output  # no key configured: it says so at start
    stations: list[AnsweringStation] = []
    try:
        plan = [("CP-A16", 0, "ocpp1.6"), ("cp-a201", 0, "ocpp2.0.1"), ("CP-B16", 1, "ocpp1.6")]
        plan.append(("cp-b201", 1, "ocpp2.0.1"))
        for station_id, index, subprotocol in plan:
            url = f"ws://127.0.0.1:{gateways[index].port}/ocpp/{station_id}"
            stations.append(await AnsweringStation.connect(url, subprotocol))
        async with api_client(f"http://127.0.0.1:{api.port}") as client:
            for station_id, _, _ in plan:
                await wait_connected(client, station_id)
            listed = (await client.get("/api/v1/stations", params={"connected": True})).json()
            assert {s["station_id"] for s in listed["items"]} == {p[0] for p in plan}
            assert len({s["node_id"] for s in listed["items"]}) == 2
            v201 = (await client.get("/api/v1/stations", params={"version": "2.0.1"})).json()
            assert {s["station_id"] for s in v201["items"]} == {"cp-a201", "cp-b201"}
            for (station_id, _, _), station in zip(plan, stations, strict=True):
                response = await client.post(
                    f"/api/v1/stations/{station_id}/commands/ClearCache", json={}
                )
                assert response.status_code == 200, response.text
                assert station.calls == [("ClearCache", {})]
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
    finally:
        for station in stations:
            await station.close()
        assert await api.stop() == 0
        for gateway in gateways:
            assert await gateway.stop() == 0


async def test_station_moving_during_a_command_gets_an_outcome(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    gateways = [
        await start_gateway(tmp_path / "a", nats_server.url),
        await start_gateway(tmp_path / "b", nats_server.url),
    ]
    api = await start_api(nats_server.url)
    try:
        first = await AnsweringStation.connect(
            f"ws://127.0.0.1:{gateways[0].port}/ocpp/CP-MOVE", "ocpp1.6", silent
        )
        async with api_client(f"http://127.0.0.1:{api.port}") as client:
            await wait_connected(client, "CP-MOVE")
            command = asyncio.ensure_future(
                client.post("/api/v1/stations/CP-MOVE/commands/ClearCache?wait=20", json={})
            )
            await until(lambda: first.calls)  # the CALL reached the station on gateway a
            await first.close()
            second = await AnsweringStation.connect(
                f"ws://127.0.0.1:{gateways[1].port}/ocpp/CP-MOVE", "ocpp1.6"
            )
            response = await asyncio.wait_for(command, 10)
            assert response.status_code == 504
            assert response.json()["outcome"] == "disconnected"

            async def on_b() -> bool:
                r = await client.post("/api/v1/stations/CP-MOVE/commands/ClearCache", json={})
                return r.status_code == 200

            await until(on_b)  # presence follows it; the next command reaches it on b
            assert second.calls == [("ClearCache", {})]
            await second.close()
    finally:
        await api.stop()
        for gateway in gateways:
            await gateway.stop()


async def test_api_keys_managed_by_cli(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    api = await start_api(nats_server.url)
    base = f"http://127.0.0.1:{api.port}"
    try:
        async with api_client(base) as anonymous:
            assert (await anonymous.get("/api/v1/stations")).status_code == 200  # open: no keys
            out = await csms_cli("apikey", "--nats-url", nats_server.url, "add", "ops")
            key = out.strip().splitlines()[-1]
            assert key.startswith("csms_")

            async def closed() -> bool:
                return (await anonymous.get("/api/v1/stations")).status_code == 401

            await until(closed)
            refused = await anonymous.get("/api/v1/stations")
            assert refused.headers["content-type"].startswith("application/problem+json")
            for always_open in ("/metrics", "/schema/openapi.json"):
                assert (await anonymous.get(always_open)).status_code == 200
            health = await anonymous.get("/healthz")  # open too; 503: no gateway made the stream
            assert health.status_code == 503
            assert health.json()["components"] == {"nats": True, "stream": False}
            async with api_client(base, key) as authorized:
                assert (await authorized.get("/api/v1/stations")).status_code == 200
            async with api_client(base, key + "x") as wrong:
                assert (await wrong.get("/api/v1/stations")).status_code == 401
            listed = await csms_cli("apikey", "--nats-url", nats_server.url, "list")
            assert '"name": "ops"' in listed
            assert key not in listed
            out = await csms_cli("apikey", "--nats-url", nats_server.url, "add", "ci")
            other = out.strip().splitlines()[-1]
            await csms_cli("apikey", "--nats-url", nats_server.url, "revoke", "ops")
            async with api_client(base, key) as revoked:

                async def rejected() -> bool:
                    return (await revoked.get("/api/v1/stations")).status_code == 401

                await until(rejected)
            async with api_client(base, other) as still_valid:
                assert (await still_valid.get("/api/v1/stations")).status_code == 200
    finally:
        await api.stop()


async def test_killed_gateway_leaves_no_ghosts_and_no_hang(
    tmp_path: Path, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL: no session closes, no presence update. The node's beat stops, so its stations
    turn offline; meanwhile commands get an answer at once (no responders), never a hang."""
    monkeypatch.setenv("CSMS_PRESENCE_BEAT_S", "0.2")  # stale after 3 missed beats: 0.6 s
    gateway = await start_gateway(tmp_path / "a", nats_server.url)
    api = await start_api(nats_server.url)
    station = await AnsweringStation.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/CP-GHOST", "ocpp1.6", silent
    )
    try:
        async with api_client(f"http://127.0.0.1:{api.port}") as client:
            await wait_connected(client, "CP-GHOST")
            gateway.process.kill()
            await gateway.process.wait()
            asked = time.monotonic()
            response = await client.post(
                "/api/v1/stations/CP-GHOST/commands/ClearCache?wait=30", json={}
            )
            assert response.status_code == 404  # nobody serves that node any more
            assert time.monotonic() - asked < 10  # not the 30 s of ?wait=
            await wait_connected(client, "CP-GHOST", connected=False)
    finally:
        await station.close()
        await api.stop()


async def test_api_alone_with_a_store_serves_analytics(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    api = await start_api(nats_server.url, "--clickhouse-url", f"chdb://{tmp_path / 'ch'}")
    try:
        async with api_client(f"http://127.0.0.1:{api.port}") as client:
            transactions = await client.get("/api/v1/transactions")
            assert transactions.status_code == 200, transactions.text
            assert transactions.json()["items"] == []
    finally:
        assert await api.stop() == 0
