"""``/api/v1/stations``: who is connected where, with which OCPP version, since when."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Annotated, Any, Literal

import msgspec
from litestar import get
from litestar.params import FromPath, FromQuery, QueryParameter

from csms.api.dispatch import find_station
from csms.api.problems import ProblemError, problems
from csms.api.services import ApiServices, Services
from streams import queries
from streams.presence import StationPresence
from streams.store import StoreError

log = logging.getLogger(__name__)

Version = Literal["1.6", "2.0.1", "2.1"]


class Station(msgspec.Struct, kw_only=True):
    station_id: str
    connected: bool
    ocpp_version: str
    node_id: str
    """The gateway process holding (or that last held) the connection."""
    connected_at: str
    last_seen: str
    disconnected_at: str | None = None
    boot: dict[str, Any] | None = None
    """The last BootNotification payload, when the projections store is available."""
    connectors: list[dict[str, Any]] | None = None
    """Connector/EVSE status, when the projections store is available."""


class StationPage(msgspec.Struct, kw_only=True):
    items: list[Station]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; absent on the last page."""


def to_station(presence: StationPresence, facts: dict[str, Any] | None = None) -> Station:
    return Station(
        station_id=presence.station_id,
        connected=presence.connected,
        ocpp_version=presence.ocpp_version,
        node_id=presence.node_id,
        connected_at=presence.connected_at,
        last_seen=presence.last_seen,
        disconnected_at=presence.disconnected_at,
        boot=facts.get("boot") if facts else None,
        connectors=facts.get("connectors") if facts else None,
    )


async def _facts(services: ApiServices, station_id: str | None) -> dict[str, dict[str, Any]]:
    """Boot info and connector status from the projections, by station (empty without a
    store, or while it fails: presence answers on its own)."""
    if services.store is None:
        return {}
    try:
        rows = await queries.station_status(services.store, station_id)
    except (StoreError, queries.QueryError) as err:
        log.warning("station facts unavailable: %s", err)
        return {}
    return {row["station_id"]: row for row in rows}


def _cursor(station_id: str) -> str:
    return base64.urlsafe_b64encode(station_id.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ProblemError(400, "invalid-cursor", "the cursor is not one this API issued") from None


@get("/stations", summary="List stations", responses=problems(400, 401))
async def list_stations(
    services: Services,
    connected: FromQuery[bool | None] = None,
    version: FromQuery[Version | None] = None,
    status: Annotated[
        str | None,
        QueryParameter(
            max_length=40, description="A connector/EVSE status (needs the projections)"
        ),
    ] = None,
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> StationPage:
    """Stations in identity order; filter by ``connected``, ``version`` and ``status`` (any
    connector in that status, e.g. Faulted); cursor pagination."""
    after = _after(cursor) if cursor else None
    if status is not None and services.store is None:
        raise ProblemError(400, "status-unavailable", "the status filter needs the projections")
    facts = await _facts(services, None)
    items: list[Station] = []
    more = False
    for presence in await services.presence.all():
        if after is not None and presence.station_id <= after:
            continue
        if connected is not None and presence.connected != connected:
            continue
        if version is not None and presence.ocpp_version != version:
            continue
        station_facts = facts.get(presence.station_id)
        if status is not None and not _has_status(station_facts, status):
            continue
        if len(items) == limit:
            more = True
            break
        items.append(to_station(presence, station_facts))
    next_cursor = _cursor(items[-1].station_id) if more and items else None
    return StationPage(items=items, next_cursor=next_cursor)


@get("/stations/{station_id:str}", summary="One station", responses=problems(401, 404))
async def get_station(services: Services, station_id: FromPath[str]) -> Station:
    presence = await find_station(services, station_id)
    facts = await _facts(services, presence.station_id)
    return to_station(presence, facts.get(presence.station_id))


def _has_status(facts: dict[str, Any] | None, status: str) -> bool:
    connectors = (facts or {}).get("connectors") or []
    return any(str(c.get("status", "")).casefold() == status.casefold() for c in connectors)
