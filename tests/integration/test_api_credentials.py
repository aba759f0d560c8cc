"""Station credentials never go around the registry through the operator API (A01.FR.03/09,
A02): a password or certificate sent as a plain command gets 409 and nothing reaches the
station; ``csms stations rotate-password`` / ``renew-certificate`` are the way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms import app
from tests.integration.api_support import AnsweringStation, api_client, wait_connected
from tests.integration.conftest import ws_url


@pytest.fixture
async def client(csms: app.Running) -> AsyncIterator[Any]:
    async with api_client(f"http://127.0.0.1:{csms.settings.api_port}") as http:
        yield http


@pytest.mark.parametrize(
    ("subprotocol", "station_id", "path", "body"),
    [
        ("ocpp1.6", "CRED16", "configuration", {"key": "AuthorizationKey", "value": "AB" * 20}),
        ("ocpp1.6", "CRED16", "commands/ChangeConfiguration",
         {"key": "authorizationkey", "value": "AB" * 20}),
        ("ocpp2.0.1", "cred201", "configuration",
         {"key": "SecurityCtrlr.BasicAuthPassword", "value": "x" * 40}),
        ("ocpp2.0.1", "cred201", "commands/CertificateSigned",
         {"certificateChain": "-----BEGIN CERTIFICATE-----"}),
    ],
)  # fmt: skip
async def test_credentials_are_refused_by_the_api(
    csms: app.Running, client: Any, subprotocol: str, station_id: str, path: str, body: Any
) -> None:
    station = await AnsweringStation.connect(ws_url(csms, station_id), subprotocol)
    try:
        await wait_connected(client, station_id)
        method = "put" if path == "configuration" else "post"
        refused = await client.request(method, f"/api/v1/stations/{station_id}/{path}", json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("credential-change")
        # Other configuration still goes through, and the refused one never reached the station.
        key = "HeartbeatInterval" if subprotocol == "ocpp1.6" else "OCPPCommCtrlr.HeartbeatInterval"
        ok = await client.put(
            f"/api/v1/stations/{station_id}/configuration", json={"key": key, "value": "60"}
        )
        assert ok.status_code == 200, ok.text
        assert [action for action, _ in station.calls] == [
            "ChangeConfiguration" if subprotocol == "ocpp1.6" else "SetVariables"
        ]
    finally:
        await station.close()
