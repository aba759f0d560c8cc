"""The operator API against the real CSMS (gateway + API in one loop) and a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms import app
from tests.integration.api_support import (
    AnsweringStation,
    Reply,
    api_client,
    until,
    wait_connected,
)
from tests.integration.conftest import ws_url


def api_url(running: app.Running) -> str:
    return f"http://127.0.0.1:{running.settings.api_port}"


@pytest.fixture
async def client(csms: app.Running) -> AsyncIterator[Any]:
    async with api_client(api_url(csms)) as http:
        yield http


async def test_healthz_and_schema(client: Any) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/stations/{station_id}/commands/{action}" in schema.json()["paths"]


@pytest.mark.parametrize(
    ("subprotocol", "station_id", "action", "payload"),
    [
        ("ocpp1.6", "CP-16", "Reset", {"type": "Soft"}),
        ("ocpp2.0.1", "cp-201", "Reset", {"type": "OnIdle"}),
        ("ocpp2.1", "cp-21", "ClearCache", {}),
    ],
)
async def test_command_round_trip(
    csms: app.Running,
    client: Any,
    subprotocol: str,
    station_id: str,
    action: str,
    payload: dict[str, Any],
) -> None:
    station = await AnsweringStation.connect(ws_url(csms, station_id), subprotocol)
    try:
        await wait_connected(client, station_id)
        response = await client.post(
            f"/api/v1/stations/{station_id}/commands/{action}", json=payload
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["result"] == {"status": "Accepted"}
        assert body["status"] == "answered"
        assert station.calls == [(action, payload)]
        polled = await client.get(f"/api/v1/commands/{body['command_id']}")
        assert polled.json()["status"] == "answered"
    finally:
        await station.close()


async def test_invalid_payload_is_422_and_never_sent(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-422"), "ocpp1.6")
    try:
        await wait_connected(client, "CP-422")
        response = await client.post(
            "/api/v1/stations/CP-422/commands/Reset", json={"type": "Sideways"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["code"] == "PropertyConstraintViolation"
        assert problem["path"] == "/type"
        unknown = await client.post("/api/v1/stations/CP-422/commands/BootNotification", json={})
        assert unknown.status_code == 422
        # a command that is sent after the refused ones is the first CALL the station sees
        ok = await client.post("/api/v1/stations/CP-422/commands/ClearCache", json={})
        assert ok.status_code == 200
        assert [a for a, _ in station.calls] == ["ClearCache"]
    finally:
        await station.close()


def refuse(action: str, payload: dict[str, Any]) -> Reply:
    return "error", ("NotSupported", "not on this charger")


def silent(action: str, payload: dict[str, Any]) -> Reply:
    return None


async def test_call_error_is_502(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-502"), "ocpp1.6", refuse)
    try:
        await wait_connected(client, "CP-502")
        response = await client.post("/api/v1/stations/CP-502/commands/ClearCache", json={})
        assert response.status_code == 502
        problem = response.json()
        assert problem["code"] == "NotSupported"
        assert problem["detail"] == "not on this charger"
    finally:
        await station.close()


async def test_timeout_is_504_and_wait0_polls(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "cp-504"), "ocpp2.0.1", silent)
    try:
        await wait_connected(client, "cp-504")
        response = await client.post(
            "/api/v1/stations/cp-504/commands/ClearCache?wait=0.3", json={}
        )
        assert response.status_code == 504
        assert response.json()["outcome"] == "timeout"
    finally:
        await station.close()


async def test_wait0_returns_202_then_answered(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-202"), "ocpp1.6")
    try:
        await wait_connected(client, "CP-202")
        response = await client.post("/api/v1/stations/CP-202/commands/ClearCache?wait=0", json={})
        assert response.status_code == 202
        command_id = response.json()["command_id"]
        assert response.headers["location"] == f"/api/v1/commands/{command_id}"

        async def answered() -> bool:
            polled = await client.get(f"/api/v1/commands/{command_id}")
            return bool(polled.json()["status"] == "answered")

        await until(answered)
    finally:
        await station.close()


async def test_unknown_and_offline_are_404(csms: app.Running, client: Any) -> None:
    unknown = await client.post("/api/v1/stations/nobody/commands/ClearCache", json={})
    assert unknown.status_code == 404
    station = await AnsweringStation.connect(ws_url(csms, "CP-gone"), "ocpp1.6")
    await wait_connected(client, "CP-gone")
    await station.close()
    await wait_connected(client, "CP-gone", connected=False)
    offline = await client.post("/api/v1/stations/CP-gone/commands/ClearCache", json={})
    assert offline.status_code == 404
    assert offline.json()["type"].endswith("station-offline")


async def test_station_shows_boot_info_and_connector_status(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-FACTS"), "ocpp1.6")
    try:
        boot = {"chargePointVendor": "Acme", "chargePointModel": "X1", "firmwareVersion": "1.2"}
        assert (await station.call("BootNotification", boot, "b1"))[0] == 3
        status = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
        assert (await station.call("StatusNotification", status, "s1"))[0] == 3

        async def projected() -> Any:  # the projector folds the stream into the store
            body = (await client.get("/api/v1/stations/CP-FACTS")).json()
            return body if body.get("boot") and body.get("connectors") else None

        body = await until(projected, timeout_s=30)
        assert body["connected"] is True
        assert body["ocpp_version"] == "1.6"
        assert body["boot"]["vendor"] == "Acme"
        assert body["boot"]["model"] == "X1"
        [connector] = body["connectors"]
        assert connector["status"] == "Faulted"
        assert connector["connector_id"] == 1
        faulted = await client.get("/api/v1/stations", params={"status": "Faulted"})
        assert [s["station_id"] for s in faulted.json()["items"]] == ["CP-FACTS"]
        available = await client.get("/api/v1/stations", params={"status": "Available"})
        assert available.json()["items"] == []
    finally:
        await station.close()


async def test_station_list_pages_with_a_cursor(csms: app.Running, client: Any) -> None:
    stations = [
        await AnsweringStation.connect(ws_url(csms, f"CP-PAGE-{n}"), "ocpp1.6") for n in range(5)
    ]
    try:
        for n in range(5):
            await wait_connected(client, f"CP-PAGE-{n}")
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/stations", params=params)).json()
            seen += [s["station_id"] for s in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"CP-PAGE-{n}" for n in range(5)]
        bad = await client.get("/api/v1/stations", params={"cursor": "%%%"})
        assert bad.status_code == 400
    finally:
        for station in stations:
            await station.close()
