"""``POST /api/v1/stations/{id}/commands/{Action}``, ``GET /api/v1/commands/{id}`` and bulk."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from csms.api.auth import requested_by
from csms.api.dispatch import HTTP_OF, CommandResult, raise_for, result_of, run
from csms.api.problems import ProblemError, problems
from csms.api.services import Services

_COMMAND_ID = re.compile(r"[0-9a-f]{32}")

Wait = Annotated[
    float,
    QueryParameter(
        ge=0,
        le=300,
        description="Seconds to wait for the station's answer; 0: answer 202 at once and poll.",
    ),
]


@post(
    "/stations/{station_id:str}/commands/{action:str}",
    status_code=200,
    summary="Send an OCPP request to a station",
    responses={
        202: ResponseSpec(CommandResult, description="Accepted (wait=0): poll the command"),
        **problems(400, 401, 404, 409, 422, 502, 504),
    },
)
async def send_command(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    action: FromPath[str],
    data: JSONBody[dict[str, Any]],
    wait: Wait = 30.0,
) -> Response[CommandResult]:
    """The body is the OCPP request payload of ``action`` in the station's negotiated version.
    200: the station's CALLRESULT payload in ``result``; 202 (``wait=0``): poll the command;
    404 unknown or offline station; 422 invalid payload (nothing sent); 502 the station
    answered with a CALLERROR; 504 no answer in time."""
    record, outcome = await run(services, station_id, action, data, wait, requested_by(request))
    if outcome is None:
        return Response(
            result_of(record),
            status_code=202,
            headers={"Location": f"/api/v1/commands/{record.command_id}"},
        )
    return Response(raise_for(record))


@get("/commands/{command_id:str}", summary="Status of a command", responses=problems(401, 404))
async def get_command(services: Services, command_id: FromPath[str]) -> CommandResult:
    """``status``: pending, sent, answered, error or timed_out."""
    record = await services.log.get(command_id) if _COMMAND_ID.fullmatch(command_id) else None
    if record is None:
        raise ProblemError(404, "command-unknown", f"no command {command_id!r}")
    return result_of(record)


class BulkCommand(msgspec.Struct, kw_only=True):
    station_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=10_000)]
    payload: dict[str, Any] = {}
    wait: Annotated[float, msgspec.Meta(ge=0, le=300)] = 30.0
    """Seconds to wait for each station; 0: queue them all, answer at once with the command ids
    (202 per station) and let them run in the background, still at most ``bulk_concurrency``
    at a time (firmware roll-outs to thousands of stations)."""


class BulkItem(msgspec.Struct, kw_only=True):
    station_id: str
    http_status: int
    command_id: str | None = None
    status: str | None = None
    outcome: str | None = None
    result: dict[str, Any] | None = None
    code: str | None = None
    description: str | None = None


class BulkResult(msgspec.Struct, kw_only=True):
    action: str
    total: int
    answered: int
    results: list[BulkItem]


@post(
    "/commands/{action:str}",
    status_code=200,
    summary="Send one command to many stations",
    responses=problems(400, 401),
)
async def bulk_command(
    request: Request[Any, Any, Any],
    services: Services,
    action: FromPath[str],
    data: JSONBody[BulkCommand],
) -> BulkResult:
    """Per-station outcomes (``wait=0``: command ids to poll), in the order of ``station_ids``;
    at most ``bulk_concurrency`` commands are in flight at once."""
    gate = asyncio.Semaphore(services.bulk_concurrency)
    who = requested_by(request)

    async def one(station_id: str) -> BulkItem:
        async with gate:
            try:
                record, outcome = await run(
                    services, station_id, action, data.payload, data.wait, who
                )
            except ProblemError as problem:
                return BulkItem(
                    station_id=station_id,
                    http_status=problem.status_code,
                    description=problem.detail,
                    code=problem.extensions.get("code"),
                )
        item = result_of(record)
        return BulkItem(
            station_id=station_id,
            http_status=HTTP_OF[outcome.outcome] if outcome is not None else 202,
            command_id=item.command_id,
            status=item.status,
            outcome=item.outcome,
            result=item.result,
            code=item.code,
            description=item.description,
        )

    results = await asyncio.gather(*(one(s) for s in data.station_ids))
    answered = sum(1 for r in results if r.outcome == "answered")
    return BulkResult(action=action, total=len(results), answered=answered, results=results)
