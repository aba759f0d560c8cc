"""Endpoints that hide the differences between OCPP 1.6 and 2.x: one body, the right action and
payload for the station's negotiated version. Each answers like the generic command endpoint
(200 with the station's answer, or the same problems), plus ``status``: the station's verdict.

Each endpoint is a row of a table, not a branch: a :class:`Versioned` names, per version family,
the OCPP action, how the body becomes its payload and where the verdict is in the answer, and
:func:`dispatch` does the rest (connected station, pick, send, map) for all of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
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
RESPONSES = problems(400, 401, 404, 409, 422, 502, 504)


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


Build = Callable[[Any], dict[str, Any]]
"""The request body (a msgspec struct) → the OCPP payload."""
Verdict = Callable[[dict[str, Any]], str | None]
"""The station's answer → its verdict (``status`` of :class:`ActionOutcome`)."""


def status_field(result: dict[str, Any]) -> str | None:
    status = result.get("status")
    return status if isinstance(status, str) else None


@dataclass(frozen=True, slots=True)
class Call:
    action: str
    build: Build
    verdict: Verdict = status_field


@dataclass(frozen=True, slots=True)
class Versioned:
    """One operation in both version families (2.x: 2.0.1 and 2.1)."""

    v16: Call
    v2: Call

    def pick(self, presence: StationPresence) -> Call:
        return self.v16 if is_v16(presence) else self.v2


async def dispatch(
    request: Request[Any, Any, Any],
    services: Services,
    presence: StationPresence,
    operation: Versioned,
    data: Any,
    wait: float,
) -> ActionOutcome:
    """Send ``operation`` for the station's version; ``status`` is the version's verdict."""
    call = operation.pick(presence)
    outcome = await send(request, services, presence, call.action, call.build(data), wait)
    outcome.status = call.verdict(outcome.result or {})
    return outcome


def _with(payload: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """``payload`` plus the optional fields that are set."""
    return {**payload, **{k: v for k, v in optional.items() if v is not None}}


class RemoteStart(msgspec.Struct, kw_only=True):
    id_token: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]
    token_type: str = "ISO14443"
    """2.x IdTokenEnumType."""
    connector_id: Id | None = None
    """1.6 connector (2.x: ``evse_id``)."""
    evse_id: Id | None = None


REMOTE_START = Versioned(
    v16=Call(
        "RemoteStartTransaction",
        lambda d: _with({"idTag": d.id_token}, connectorId=d.connector_id),
    ),
    v2=Call(
        "RequestStartTransaction",
        lambda d: _with(
            {
                "idToken": {"idToken": d.id_token, "type": d.token_type},
                "remoteStartId": secrets.randbelow(2**31 - 1) + 1,
            },
            evseId=d.evse_id,
        ),
    ),
)


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
    call = REMOTE_START.pick(presence)
    payload = call.build(data)  # the watch needs it (2.x: its remoteStartId)
    async with TransactionWatch(services.nc, presence, payload) as watch:
        outcome = await send(request, services, presence, call.action, payload, wait)
        if outcome.status == "Accepted":
            outcome.transaction_id = await watch.transaction_id(wait or services.default_wait_s)
    return outcome


class RemoteStop(msgspec.Struct, kw_only=True):
    transaction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]


def _integer_transaction_id(data: RemoteStop) -> dict[str, Any]:
    if not data.transaction_id.lstrip("-").isdigit():
        raise ProblemError(422, "invalid-payload", "1.6 transaction ids are integers")
    return {"transactionId": int(data.transaction_id)}


REMOTE_STOP = Versioned(
    v16=Call("RemoteStopTransaction", _integer_transaction_id),
    v2=Call("RequestStopTransaction", lambda d: {"transactionId": d.transaction_id}),
)


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
    return await dispatch(request, services, presence, REMOTE_STOP, data, wait)


class ResetRequest(msgspec.Struct, kw_only=True):
    kind: Literal["soft", "hard"] = "soft"
    """soft: 1.6 Soft / 2.x OnIdle; hard: 1.6 Hard / 2.x Immediate."""
    evse_id: Id | None = None
    """2.x only: reset one EVSE."""


RESET = Versioned(
    v16=Call("Reset", lambda d: {"type": "Hard" if d.kind == "hard" else "Soft"}),
    v2=Call(
        "Reset",
        lambda d: _with({"type": "Immediate" if d.kind == "hard" else "OnIdle"}, evseId=d.evse_id),
    ),
)


@post("/stations/{station_id:str}/reset", status_code=200, summary="Reset", responses=RESPONSES)
async def reset(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[ResetRequest],
    wait: Wait = 30.0,
) -> ActionOutcome:
    presence = await connected_station(services, station_id)
    return await dispatch(request, services, presence, RESET, data, wait)


class Unlock(msgspec.Struct, kw_only=True):
    connector_id: Id = 1
    evse_id: Id = 1
    """2.x only."""


UNLOCK = Versioned(
    v16=Call("UnlockConnector", lambda d: {"connectorId": d.connector_id}),
    v2=Call("UnlockConnector", lambda d: {"connectorId": d.connector_id, "evseId": d.evse_id}),
)


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
    return await dispatch(request, services, presence, UNLOCK, data, wait)


class Availability(msgspec.Struct, kw_only=True):
    operative: bool
    connector_id: Id | None = None
    """1.6: the connector (absent or 0: the whole station); 2.x: a connector of ``evse_id``."""
    evse_id: Id | None = None
    """2.x: the EVSE (absent: the whole station)."""


def _operational(data: Availability) -> str:
    return "Operative" if data.operative else "Inoperative"


def _availability_v2(data: Availability) -> dict[str, Any]:
    payload: dict[str, Any] = {"operationalStatus": _operational(data)}
    if data.evse_id is not None:
        payload["evse"] = _with({"id": data.evse_id}, connectorId=data.connector_id)
    return payload


AVAILABILITY = Versioned(
    v16=Call(
        "ChangeAvailability",
        lambda d: {"connectorId": d.connector_id or 0, "type": _operational(d)},
    ),
    v2=Call("ChangeAvailability", _availability_v2),
)


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
    return await dispatch(request, services, presence, AVAILABILITY, data, wait)


class Trigger(msgspec.Struct, kw_only=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The version's MessageTrigger value, e.g. Heartbeat, StatusNotification."""
    connector_id: Id | None = None
    """1.6 only."""
    evse_id: Id | None = None
    """2.x only."""


TRIGGER = Versioned(
    v16=Call(
        "TriggerMessage",
        lambda d: _with({"requestedMessage": d.message}, connectorId=d.connector_id),
    ),
    v2=Call(
        "TriggerMessage",
        lambda d: _with(
            {"requestedMessage": d.message},
            evse={"id": d.evse_id} if d.evse_id is not None else None,
        ),
    ),
)


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
    return await dispatch(request, services, presence, TRIGGER, data, wait)


HANDLERS = [
    remote_start,
    remote_stop,
    reset,
    unlock,
    availability,
    trigger,
]
