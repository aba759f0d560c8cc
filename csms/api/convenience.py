"""Endpoints that hide the differences between OCPP 1.6 and 2.x: one body, the right action and
payload for the station's negotiated version. Each answers like the generic command endpoint
(200 with the station's answer, or the same problems), plus ``status``: the station's verdict.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, post
from litestar.params import FromPath, JSONBody

from csms.api.auth import requested_by
from csms.api.commands import Wait
from csms.api.dispatch import connected_station, raise_for, run_on
from csms.api.problems import ProblemError, problems
from csms.api.remote_start import TransactionWatch
from csms.api.services import Services
from streams.presence import StationPresence

Id = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
RESPONSES = problems(400, 401, 404, 422, 502, 504)


class ActionOutcome(msgspec.Struct, kw_only=True):
    command_id: str
    ocpp_version: str
    action: str
    """The OCPP action that was sent."""
    status: str | None = None
    """The station's verdict (``status`` of its answer), e.g. Accepted or Rejected."""
    result: dict[str, Any] | None = None
    transaction_id: str | None = None
    """Remote start: the transaction id, once the station reported the transaction."""


async def send(
    request: Request[Any, Any, Any],
    services: Services,
    presence: StationPresence,
    action: str,
    payload: dict[str, Any],
    wait: float,
) -> ActionOutcome:
    wait = wait or services.default_wait_s  # these endpoints always wait for the answer
    record, _ = await run_on(services, presence, action, payload, wait, requested_by(request))
    answered = raise_for(record)
    result = answered.result or {}
    status = result.get("status")
    return ActionOutcome(
        command_id=record.command_id,
        ocpp_version=presence.ocpp_version,
        action=action,
        status=status if isinstance(status, str) else None,
        result=result,
    )


def is_v16(presence: StationPresence) -> bool:
    return presence.ocpp_version == "1.6"


class RemoteStart(msgspec.Struct, kw_only=True):
    id_token: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]
    token_type: str = "ISO14443"
    """2.x IdTokenEnumType."""
    connector_id: Id | None = None
    """1.6 connector (2.x: ``evse_id``)."""
    evse_id: Id | None = None


@post(
    "/stations/{station_id:str}/remote-start",
    status_code=200,
    summary="Remote start",
    responses=RESPONSES,
)
async def remote_start(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[RemoteStart],
    wait: Wait = 30.0,
) -> ActionOutcome:
    """1.6 RemoteStartTransaction / 2.x RequestStartTransaction. When accepted, waits (within
    ``wait``) for the station to report the transaction and returns its ``transaction_id``."""
    presence = await connected_station(services, station_id)
    payload: dict[str, Any]
    if is_v16(presence):
        action, payload = "RemoteStartTransaction", {"idTag": data.id_token}
        if data.connector_id is not None:
            payload["connectorId"] = data.connector_id
    else:
        remote_start_id = secrets.randbelow(2**31 - 1) + 1
        action = "RequestStartTransaction"
        payload = {
            "idToken": {"idToken": data.id_token, "type": data.token_type},
            "remoteStartId": remote_start_id,
        }
        if data.evse_id is not None:
            payload["evseId"] = data.evse_id
    async with TransactionWatch(services.nc, presence, payload) as watch:
        outcome = await send(request, services, presence, action, payload, wait)
        if outcome.status == "Accepted":
            outcome.transaction_id = await watch.transaction_id(wait or services.default_wait_s)
    return outcome


class RemoteStop(msgspec.Struct, kw_only=True):
    transaction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]


@post(
    "/stations/{station_id:str}/remote-stop",
    status_code=200,
    summary="Remote stop",
    responses=RESPONSES,
)
async def remote_stop(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[RemoteStop],
    wait: Wait = 30.0,
) -> ActionOutcome:
    """1.6 RemoteStopTransaction (integer ids) / 2.x RequestStopTransaction."""
    presence = await connected_station(services, station_id)
    payload: dict[str, Any]
    if is_v16(presence):
        if not data.transaction_id.lstrip("-").isdigit():
            raise ProblemError(422, "invalid-payload", "1.6 transaction ids are integers")
        action, payload = "RemoteStopTransaction", {"transactionId": int(data.transaction_id)}
    else:
        action, payload = "RequestStopTransaction", {"transactionId": data.transaction_id}
    return await send(request, services, presence, action, payload, wait)


class ResetRequest(msgspec.Struct, kw_only=True):
    kind: Literal["soft", "hard"] = "soft"
    """soft: 1.6 Soft / 2.x OnIdle; hard: 1.6 Hard / 2.x Immediate."""
    evse_id: Id | None = None
    """2.x only: reset one EVSE."""


@post("/stations/{station_id:str}/reset", status_code=200, summary="Reset", responses=RESPONSES)
async def reset(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[ResetRequest],
    wait: Wait = 30.0,
) -> ActionOutcome:
    presence = await connected_station(services, station_id)
    payload: dict[str, Any]
    if is_v16(presence):
        payload = {"type": "Hard" if data.kind == "hard" else "Soft"}
    else:
        payload = {"type": "Immediate" if data.kind == "hard" else "OnIdle"}
        if data.evse_id is not None:
            payload["evseId"] = data.evse_id
    return await send(request, services, presence, "Reset", payload, wait)


class Unlock(msgspec.Struct, kw_only=True):
    connector_id: Id = 1
    evse_id: Id = 1
    """2.x only."""


@post(
    "/stations/{station_id:str}/unlock",
    status_code=200,
    summary="Unlock a connector",
    responses=RESPONSES,
)
async def unlock(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[Unlock],
    wait: Wait = 30.0,
) -> ActionOutcome:
    presence = await connected_station(services, station_id)
    payload: dict[str, Any] = {"connectorId": data.connector_id}
    if not is_v16(presence):
        payload["evseId"] = data.evse_id
    return await send(request, services, presence, "UnlockConnector", payload, wait)


class Availability(msgspec.Struct, kw_only=True):
    operative: bool
    connector_id: Id | None = None
    """1.6: the connector (absent or 0: the whole station); 2.x: a connector of ``evse_id``."""
    evse_id: Id | None = None
    """2.x: the EVSE (absent: the whole station)."""


@post(
    "/stations/{station_id:str}/availability",
    status_code=200,
    summary="Change availability",
    responses=RESPONSES,
)
async def availability(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[Availability],
    wait: Wait = 30.0,
) -> ActionOutcome:
    presence = await connected_station(services, station_id)
    status = "Operative" if data.operative else "Inoperative"
    payload: dict[str, Any]
    if is_v16(presence):
        payload = {"connectorId": data.connector_id or 0, "type": status}
    else:
        payload = {"operationalStatus": status}
        if data.evse_id is not None:
            payload["evse"] = {"id": data.evse_id}
            if data.connector_id is not None:
                payload["evse"]["connectorId"] = data.connector_id
    return await send(request, services, presence, "ChangeAvailability", payload, wait)


class Trigger(msgspec.Struct, kw_only=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The version's MessageTrigger value, e.g. Heartbeat, StatusNotification."""
    connector_id: Id | None = None
    """1.6 only."""
    evse_id: Id | None = None
    """2.x only."""


@post(
    "/stations/{station_id:str}/trigger",
    status_code=200,
    summary="Trigger a message",
    responses=RESPONSES,
)
async def trigger(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[Trigger],
    wait: Wait = 30.0,
) -> ActionOutcome:
    presence = await connected_station(services, station_id)
    payload: dict[str, Any] = {"requestedMessage": data.message}
    if is_v16(presence) and data.connector_id is not None:
        payload["connectorId"] = data.connector_id
    elif not is_v16(presence) and data.evse_id is not None:
        payload["evse"] = {"id": data.evse_id}
    return await send(request, services, presence, "TriggerMessage", payload, wait)


HANDLERS = [
    remote_start,
    remote_stop,
    reset,
    unlock,
    availability,
    trigger,
]
