"""Convenience endpoints (one body, the right OCPP for each version) and id tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms import app
from tests.integration.api_support import (
    AnsweringStation,
    api_client,
    report_transaction,
    until,
    wait_connected,
)
from tests.integration.conftest import ws_url


@pytest.fixture
async def client(csms: app.Running) -> AsyncIterator[Any]:
    async with api_client(f"http://127.0.0.1:{csms.settings.api_port}") as http:
        yield http


CASES_16: list[tuple[str, str, dict[str, Any], tuple[str, dict[str, Any]]]] = [
    ("post", "reset", {"kind": "hard"}, ("Reset", {"type": "Hard"})),
    ("post", "unlock", {"connector_id": 2}, ("UnlockConnector", {"connectorId": 2})),
    (
        "post",
        "availability",
        {"operative": False},
        ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
    ),
    (
        "post",
        "trigger",
        {"message": "Heartbeat"},
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ),
    (
        "post",
        "remote-stop",
        {"transaction_id": "42"},
        ("RemoteStopTransaction", {"transactionId": 42}),
    ),
    (
        "put",
        "configuration",
        {"key": "HeartbeatInterval", "value": "60"},
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
    ),
]

CASES_201: list[tuple[str, str, dict[str, Any], tuple[str, dict[str, Any]]]] = [
    ("post", "reset", {"kind": "hard"}, ("Reset", {"type": "Immediate"})),
    (
        "post",
        "unlock",
        {"connector_id": 2, "evse_id": 1},
        ("UnlockConnector", {"connectorId": 2, "evseId": 1}),
    ),
    (
        "post",
        "availability",
        {"operative": True, "evse_id": 1},
        ("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}}),
    ),
    (
        "post",
        "remote-stop",
        {"transaction_id": "tx-9"},
        ("RequestStopTransaction", {"transactionId": "tx-9"}),
    ),
    (
        "put",
        "configuration",
        {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": "60"},
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "60",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        ),
    ),
]


@pytest.mark.parametrize(
    ("subprotocol", "station_id", "cases"),
    [("ocpp1.6", "CP-C16", CASES_16), ("ocpp2.0.1", "cp-c201", CASES_201)],
)
async def test_convenience_endpoints(
    csms: app.Running, client: Any, subprotocol: str, station_id: str, cases: list[Any]
) -> None:
    station = await AnsweringStation.connect(
        ws_url(csms, station_id), subprotocol, after=report_transaction
    )
    try:
        await wait_connected(client, station_id)
        for method, path, body, expected in cases:
            station.calls.clear()
            response = await client.request(
                method, f"/api/v1/stations/{station_id}/{path}", json=body
            )
            assert response.status_code == 200, (path, response.text)
            assert station.calls == [expected]
            assert response.json()["status"] in ("Accepted", "Unlocked")

        started = await client.post(
            f"/api/v1/stations/{station_id}/remote-start",
            json={"id_token": "TAG1", "connector_id": 1, "evse_id": 1},
        )
        assert started.status_code == 200, started.text
        outcome = started.json()
        assert outcome["status"] == "Accepted"
        expected_id = "tx-77" if subprotocol == "ocpp2.0.1" else None
        if expected_id is None:
            assert int(outcome["transaction_id"]) > 0  # allocated by the CSMS (1.6)
        else:
            assert outcome["transaction_id"] == expected_id

        if subprotocol == "ocpp1.6":
            got = await client.get(f"/api/v1/stations/{station_id}/configuration")
            assert got.json()["settings"][0]["key"] == "HeartbeatInterval"
        else:
            got = await client.get(
                f"/api/v1/stations/{station_id}/configuration",
                params={"key": "OCPPCommCtrlr.HeartbeatInterval"},
            )
            assert got.json()["settings"] == [
                {
                    "key": "OCPPCommCtrlr.HeartbeatInterval",
                    "value": "300",
                    "readonly": None,
                    "status": "Accepted",
                }
            ]
        assert got.status_code == 200, got.text
    finally:
        await station.close()


async def test_tokens_drive_authorize_and_the_local_list(csms: app.Running, client: Any) -> None:
    station = await AnsweringStation.connect(ws_url(csms, "CP-TOK"), "ocpp1.6")
    try:
        await wait_connected(client, "CP-TOK")
        put = await client.put("/api/v1/tokens/BADTAG", json={"status": "Blocked"})
        assert put.status_code == 200, put.text
        await client.put("/api/v1/tokens/GOODTAG", json={"expiry_date": "2099-01-01T00:00:00Z"})
        listed = await client.get("/api/v1/tokens")
        assert [t["id_token"] for t in listed.json()] == ["BADTAG", "GOODTAG"]

        counter = iter(range(1000))

        async def blocked() -> bool:
            answer = await station.call("Authorize", {"idTag": "badtag"}, f"a{next(counter)}")
            return bool(answer[2]["idTagInfo"]["status"] == "Blocked")

        await until(blocked)  # every gateway mirrors the bucket; case-insensitive (CiString)

        pushed = await client.post("/api/v1/stations/CP-TOK/local-list", json={"list_version": 7})
        assert pushed.status_code == 200, pushed.text
        action, payload = station.calls[-1]
        assert action == "SendLocalList"
        assert payload["listVersion"] == 7
        assert payload["updateType"] == "Full"
        assert {
            e["idTag"]: e["idTagInfo"]["status"] for e in payload["localAuthorizationList"]
        } == {
            "BADTAG": "Blocked",
            "GOODTAG": "Accepted",
        }

        assert (await client.delete("/api/v1/tokens/BADTAG")).status_code == 204
        assert (await client.get("/api/v1/tokens/BADTAG")).status_code == 404
        assert (await client.delete("/api/v1/tokens/BADTAG")).status_code == 404
    finally:
        await station.close()
