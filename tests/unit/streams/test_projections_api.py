"""``csms.api.analytics.router`` over a real store (chDB), through litestar's test client."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.di import Provide
from litestar.testing import AsyncTestClient, create_async_test_client

from csms.api.analytics import router
from csms.api.problems import EXCEPTION_HANDLERS
from streams import schema
from streams.store import Store
from tests.chdb_engine import engine_url, fresh_database
from tests.projection_events import ScriptedStation, meter_value, project_messages, sampled_16


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("api"))
    await schema.apply(s)
    st = ScriptedStation("CP1")
    start = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": "2026-01-01T10:00:00Z"}
    mv = {
        "connectorId": 1,
        "transactionId": 5,
        "meterValue": [meter_value("2026-01-01T10:30:00Z", sampled_16("0.6", unit="kWh"))],
    }
    stop = {"transactionId": 5, "meterStop": 900, "timestamp": "2026-01-01T11:00:00Z"}
    await project_messages(
        s,
        [
            [st.connected()],
            st.answered("StartTransaction", start, {"transactionId": 5}),
            st.answered("MeterValues", mv, {}),
            st.answered("StopTransaction", stop, {}),
        ],
    )
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[AsyncTestClient[Any]]:
    async with create_async_test_client(
        route_handlers=[router],
        dependencies={"store": Provide(lambda: store, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    ) as test_client:
        yield test_client


async def test_transactions(client: AsyncTestClient[Any]) -> None:
    answer = await client.get("/api/v1/transactions", params={"station_id": "CP1", "limit": 10})
    assert answer.status_code == 200
    body = answer.json()
    assert body["next_cursor"] is None
    (tx,) = body["items"]
    assert tx["transaction_id"] == "5"
    assert tx["status"] == "completed"
    assert tx["energy_wh"] == 800.0
    assert tx["started_at"] == "2026-01-01T10:00:00Z"
    one = (await client.get("/api/v1/transactions/5")).json()
    assert [m["value_base"] for m in one["meter_values"]] == [600.0]
    assert (await client.get("/api/v1/transactions/404")).status_code == 404


async def test_events_carry_the_payload_object(client: AsyncTestClient[Any]) -> None:
    answer = await client.get(
        "/api/v1/events", params={"station_id": "CP1", "action": "MeterValues"}
    )
    items = answer.json()["items"]
    assert [(e["direction"], e["message_type"]) for e in items] == [("out", 3), ("in", 2)]
    call = items[1]
    assert set(call) >= {
        "event_id",
        "station_id",
        "direction",
        "message_type",
        "unique_id",
        "action",
        "payload",
    }
    assert call["payload"]["transactionId"] == 5
    assert items[0]["payload"] == {}


async def test_meter_values_and_station_status(client: AsyncTestClient[Any]) -> None:
    values = (await client.get("/api/v1/meter-values", params={"transaction_id": "5"})).json()
    assert [(v["unit"], v["raw_value"], v["value_base"]) for v in values["items"]] == [
        ("kWh", "0.6", 600.0)
    ]
    status = (await client.get("/api/v1/station-status")).json()["items"]
    assert status[0]["station_id"] == "CP1"
    assert status[0]["connected"] is True


async def test_bad_report_parameters_are_400(client: AsyncTestClient[Any]) -> None:
    answer = await client.get("/api/v1/reports/silent-stations", params={"minutes": 2**40})
    assert answer.status_code == 400
    events = await client.get("/api/v1/events", params={"cursor": "WzEsIDJd"})  # [1, 2]
    assert events.status_code == 200


async def test_reports_and_query(client: AsyncTestClient[Any]) -> None:
    names = (await client.get("/api/v1/reports")).json()["items"]
    for name in names:
        answer = await client.get(f"/api/v1/reports/{name}")
        assert answer.status_code == 200, (name, answer.text)
    energy = (await client.get("/api/v1/reports/energy-per-station-per-day")).json()["items"]
    assert energy == [{"station_id": "CP1", "day": "2026-01-01", "sessions": 1, "energy_wh": 800.0}]
    assert (await client.get("/api/v1/reports/nope")).status_code == 404
    ok = await client.post("/api/v1/query", json={"sql": "SELECT count() AS n FROM events"})
    assert ok.json() == {"columns": ["n"], "rows": [[7]]}
    refused = await client.post("/api/v1/query", json={"sql": "DROP TABLE events"})
    assert refused.status_code == 400
    broken = await client.post("/api/v1/query", json={"sql": "SELECT nope FROM events"})
    assert broken.status_code == 400


async def test_bad_filters_are_400(client: AsyncTestClient[Any]) -> None:
    wrong = base64.urlsafe_b64encode(json.dumps(["a", 1, 2]).encode()).decode()
    for params in (
        {"since": "yesterday"},
        {"status": "sleeping"},
        {"limit": 0},
        {"cursor": "x"},
        {"cursor": wrong},
    ):
        answer = await client.get("/api/v1/transactions", params=params)
        assert answer.status_code == 400, params
