"""The route table answers exactly the station-initiated actions of the core's tables, and every
handler's answer to every valid corpus request conforms to the response schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from csms.domain.tokens import TokenPolicy
from csms.handlers.context import HandlerContext
from csms.handlers.routing import ROUTES, SEND_ONLY, respond
from csms.protocol import SUPPORTED_VERSIONS, codec_for

CORPUS = Path(__file__).parents[2] / "fixtures" / "ocpp"
FOLDER = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


class CountingIds:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    async def allocate(self, key: str, station_id: str) -> int:
        return self.ids.setdefault(key, len(self.ids) + 1)

    async def started_by(self, transaction_id: int) -> str | None:
        return "CP1" if 0 < transaction_id <= len(self.ids) else None


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_routes_cover_exactly_the_station_initiated_actions(version: str) -> None:
    routed = {a for v, a in ROUTES if v == version} | {a for v, a in SEND_ONLY if v == version}
    assert routed == set(codec_for(version).actions("station"))


@pytest.mark.parametrize(("version", "action"), sorted(ROUTES))
def test_answers_conform_to_the_response_schema(version: str, action: str) -> None:
    ctx = HandlerContext("CP1", version, CountingIds(), TokenPolicy())
    files = sorted((CORPUS / FOLDER[version] / action / "valid").glob("*request*.json"))
    assert files
    for file in files:
        response = asyncio.run(
            respond(ROUTES[(version, action)], ctx, json.loads(file.read_text()))
        )
        codec_for(version).encode_call_result(action, "id1", response)  # raises if invalid


def test_a_retried_start_transaction_gets_the_same_id() -> None:
    ctx = HandlerContext("CP1", "1.6", CountingIds(), TokenPolicy())
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
    first = asyncio.run(respond(ROUTES[("1.6", "StartTransaction")], ctx, start))
    again = asyncio.run(respond(ROUTES[("1.6", "StartTransaction")], ctx, dict(start)))
    other = asyncio.run(
        respond(ROUTES[("1.6", "StartTransaction")], ctx, {**start, "meterStart": 1})
    )
    assert first["transactionId"] == again["transactionId"] != other["transactionId"]


def test_token_policy_answers_a_status_never_an_error() -> None:
    policy = TokenPolicy(accept_unknown=False, allow=frozenset({"Good"}), deny=frozenset({"bad"}))
    assert [policy.status(t) for t in ["good", "BAD", "other"]] == [
        "Accepted",
        "Blocked",
        "Invalid",
    ]
