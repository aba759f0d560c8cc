"""``/api/v1/tokens``: id tokens that Authorize answers from (every gateway reads the bucket),
and ``POST /api/v1/stations/{id}/local-list``: push them as the station's local list."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from csms.api.commands import Wait
from csms.api.convenience import ActionOutcome, send
from csms.api.dispatch import connected_station
from csms.api.problems import ProblemError, problems
from csms.api.services import Services
from streams.id_tokens import IdTokenRecord, TokenStatus


class TokenBody(msgspec.Struct, kw_only=True):
    status: TokenStatus = "Accepted"
    token_type: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] = "ISO14443"
    expiry_date: datetime | None = None
    """Aware UTC; after it Authorize answers Expired."""
    parent_id_token: Annotated[str, msgspec.Meta(min_length=1, max_length=36)] | None = None


def _checked(id_token: str) -> str:
    if not 0 < len(id_token) <= 36:
        raise ProblemError(422, "invalid-token", "id tokens have 1 to 36 characters")
    return id_token


@get("/tokens", summary="List id tokens", responses=problems(401))
async def list_tokens(services: Services) -> list[IdTokenRecord]:
    return await services.tokens.all()


@get("/tokens/{id_token:str}", summary="One id token", responses=problems(401, 404, 422))
async def get_token(services: Services, id_token: FromPath[str]) -> IdTokenRecord:
    record = await services.tokens.get(_checked(id_token))
    if record is None:
        raise ProblemError(404, "token-unknown", f"no id token {id_token!r}")
    return record


@put(
    "/tokens/{id_token:str}",
    summary="Create or replace an id token",
    responses=problems(400, 401, 422),
)
async def put_token(
    services: Services, id_token: FromPath[str], data: JSONBody[TokenBody]
) -> IdTokenRecord:
    if data.expiry_date is not None and data.expiry_date.tzinfo is None:
        raise ProblemError(422, "invalid-token", "expiry_date needs a time zone (UTC)")
    record = IdTokenRecord(
        id_token=_checked(id_token),
        status=data.status,
        token_type=data.token_type,
        expiry_date=data.expiry_date,
        parent_id_token=data.parent_id_token,
    )
    await services.tokens.put(record)
    return record


@delete("/tokens/{id_token:str}", summary="Delete an id token", responses=problems(401, 404, 422))
async def delete_token(services: Services, id_token: FromPath[str]) -> None:
    if not await services.tokens.delete(_checked(id_token)):
        raise ProblemError(404, "token-unknown", f"no id token {id_token!r}")


class LocalList(msgspec.Struct, kw_only=True):
    list_version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    """Default: the current Unix time in seconds (always increasing)."""


def _entry(record: IdTokenRecord, v16: bool) -> dict[str, Any]:
    expiry = record.expiry_date.isoformat() if record.expiry_date else None
    if v16:
        info: dict[str, Any] = {"status": record.status}
        if expiry:
            info["expiryDate"] = expiry
        if record.parent_id_token:
            info["parentIdTag"] = record.parent_id_token
        return {"idTag": record.id_token, "idTagInfo": info}
    info = {"status": record.status}
    if expiry:
        info["cacheExpiryDateTime"] = expiry
    if record.parent_id_token:
        info["groupIdToken"] = {"idToken": record.parent_id_token, "type": "Central"}
    return {"idToken": {"idToken": record.id_token, "type": record.token_type}, "idTokenInfo": info}


@post(
    "/stations/{station_id:str}/local-list",
    status_code=200,
    summary="Push the local list",
    responses=problems(400, 401, 404, 422, 502, 504),
)
async def push_local_list(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[LocalList],
    wait: Wait = 30.0,
) -> ActionOutcome:
    """SendLocalList (Full) with every id token of the bucket, for the station's version."""
    presence = await connected_station(services, station_id)
    v16 = presence.ocpp_version == "1.6"
    version = data.list_version or int(time.time())
    entries = [_entry(r, v16) for r in await services.tokens.all()]
    payload: dict[str, Any] = {"updateType": "Full"}
    payload["listVersion" if v16 else "versionNumber"] = version
    if entries:
        payload["localAuthorizationList"] = entries
    return await send(request, services, presence, "SendLocalList", payload, wait)


HANDLERS = [list_tokens, get_token, put_token, delete_token, push_local_list]
