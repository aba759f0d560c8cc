"""One command from HTTP to outcome: find the station, validate, record, send, map to HTTP.

Validation happens here, in the API process, with the core codec of the station's negotiated
version: an invalid payload is a 422 and never reaches NATS (the gateway checks again anyway).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Final

import msgspec
from nats.errors import Error as NatsError

from csms.api.metrics import COMMAND_LATENCY, COMMANDS
from csms.api.problems import ProblemError
from csms.api.services import ApiServices
from csms.domain.commands import CommandOutcome, CommandRecord, CommandRequest
from csms.protocol import OcppError, codec_for
from streams.presence import StationPresence, utc_now

log = logging.getLogger(__name__)


class CommandResult(msgspec.Struct, kw_only=True):
    """A command's outcome as the API returns it (200) and ``GET /api/v1/commands/{id}`` shows."""

    command_id: str
    station_id: str
    action: str
    status: str
    """pending, sent, answered, error, timed_out"""
    outcome: str | None = None
    result: dict[str, Any] | None = None
    code: str | None = None
    description: str | None = None


MAX_STATION_ID: Final = 255
"""The gateway refuses longer identities (1.6 sets no limit; 2.x allows 48)."""

HTTP_OF: Final = {
    "answered": 200,
    "call_error": 502,
    "bad_answer": 502,
    "invalid": 422,
    "timeout": 504,
    "disconnected": 504,
    "not_here": 404,
    "offline": 404,
}
SLUG_OF: Final = {
    "call_error": "station-call-error",
    "bad_answer": "station-answer-invalid",
    "invalid": "invalid-payload",
    "timeout": "station-timeout",
    "disconnected": "station-disconnected",
    "not_here": "station-offline",
    "offline": "station-offline",
}


async def find_station(services: ApiServices, station_id: str) -> StationPresence:
    """The station's presence, connected or not; 404 if it was never seen (the case rule is
    ``PresenceReader.find``'s)."""
    if not 0 < len(station_id) <= MAX_STATION_ID:
        raise ProblemError(404, "station-unknown", "no station has an identity of that length")
    presence = await services.presence.find(station_id)
    if presence is None:
        raise ProblemError(404, "station-unknown", f"station {station_id!r} is unknown")
    return presence


async def connected_station(services: ApiServices, station_id: str) -> StationPresence:
    presence = await find_station(services, station_id)
    if not presence.connected:
        raise ProblemError(404, "station-offline", f"station {station_id!r} is not connected")
    return presence


def validate(version: str, action: str, payload: Any) -> None:
    """422 with the core's error (code, description, JSON path, schema keyword)."""
    codec = codec_for(version)
    try:
        codec.check_request(action, payload)
    except OcppError as err:
        raise ProblemError(
            422,
            "invalid-payload",
            err.description,
            code=err.code,
            path=err.path or None,
            keyword=err.keyword or None,
            ocpp_version=version,
        ) from None


def _sets_password(action: str, payload: Any) -> bool:
    if action == "ChangeConfiguration":
        return str(payload.get("key", "")).lower() == "authorizationkey"
    if action == "SetVariables":
        return any(
            str(item.get("component", {}).get("name", "")).lower() == "securityctrlr"
            and str(item.get("variable", {}).get("name", "")).lower() == "basicauthpassword"
            for item in payload.get("setVariableData", [])
        )
    return False


def refuse_credential_change(action: str, payload: Any) -> None:
    """409 for a station credential sent around the registry: a password (1.6 AuthorizationKey,
    2.x SecurityCtrlr.BasicAuthPassword) or a certificate (CertificateSigned). The registry must
    stage the new credential before the station gets it and drop the old one only once the
    station accepted (A01.FR.03, A02), and a password must not land in the command log
    (A01.FR.09): ``csms stations rotate-password`` / ``renew-certificate`` do it that way."""
    if _sets_password(action, payload):
        raise ProblemError(
            409, "credential-change",
            "station passwords are changed with `csms stations rotate-password`",
        )  # fmt: skip
    if action == "CertificateSigned":
        raise ProblemError(
            409, "credential-change",
            "station certificates are renewed with `csms stations renew-certificate`",
        )  # fmt: skip


def new_record(station_id: str, action: str, payload: dict[str, Any], by: str) -> CommandRecord:
    now = utc_now()
    return CommandRecord(
        command_id=uuid.uuid4().hex,
        station_id=station_id,
        action=action,
        payload=payload,
        requested_by=by,
        requested_at=now,
        status="pending",
        updated_at=now,
    )


async def execute(
    services: ApiServices, record: CommandRecord, timeout_s: float, track: bool, version: str
) -> CommandOutcome:
    """Send and wait (every wait bounded by ``timeout_s`` plus the router's margin); store the
    outcome and its stream event. ``track``: also store ``pending``/``sent`` (polled commands)."""
    started = time.perf_counter()
    request = CommandRequest(
        command_id=record.command_id,
        station_id=record.station_id,
        action=record.action,
        payload=record.payload,
        timeout_s=timeout_s,
        requested_by=record.requested_by,
    )

    async def sent() -> None:
        if track and record.status == "pending":
            record.status, record.updated_at = "sent", utc_now()
            await services.log.put(record)

    outcome = await services.router.send(request, on_sent=sent)
    COMMANDS.labels(record.action, outcome.outcome).inc()
    COMMAND_LATENCY.labels(outcome.outcome).observe(time.perf_counter() - started)
    try:
        await services.log.finish(record, outcome, version)
    except (NatsError, TimeoutError) as err:  # the station has answered: say what it answered
        log.warning("command %s: outcome not recorded (%s)", record.command_id, err)
    return outcome


def result_of(record: CommandRecord) -> CommandResult:
    outcome = record.outcome
    return CommandResult(
        command_id=record.command_id,
        station_id=record.station_id,
        action=record.action,
        status=record.status,
        outcome=outcome.outcome if outcome else None,
        result=outcome.result if outcome else None,
        code=outcome.code if outcome else None,
        description=outcome.description if outcome else None,
    )


def raise_for(record: CommandRecord) -> CommandResult:
    """The 200 body, or the problem of a command that did not get a CALLRESULT."""
    outcome = record.outcome
    assert outcome is not None
    if outcome.outcome == "answered":
        return result_of(record)
    raise ProblemError(
        HTTP_OF[outcome.outcome],
        SLUG_OF[outcome.outcome],
        outcome.description or outcome.outcome,
        command_id=record.command_id,
        station_id=record.station_id,
        action=record.action,
        outcome=outcome.outcome,
        code=outcome.code,
    )


async def run(
    services: ApiServices,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    wait_s: float,
    requested_by: str,
) -> tuple[CommandRecord, CommandOutcome | None]:
    """Validate and send. ``wait_s`` > 0: wait for the outcome; 0: return at once (``pending``,
    the outcome lands in the command log)."""
    presence = await connected_station(services, station_id)
    return await run_on(services, presence, action, payload, wait_s, requested_by)


async def run_on(
    services: ApiServices,
    presence: StationPresence,
    action: str,
    payload: dict[str, Any],
    wait_s: float,
    requested_by: str,
) -> tuple[CommandRecord, CommandOutcome | None]:
    """:func:`run` for a station already looked up (the convenience endpoints need its version
    to build the payload)."""
    validate(presence.ocpp_version, action, payload)
    refuse_credential_change(action, payload)
    record = new_record(presence.station_id, action, payload, requested_by)
    if wait_s <= 0:
        await services.log.put(record)
        services.spawn(_background(services, record, presence.ocpp_version))
        return record, None
    version = presence.ocpp_version
    return record, await execute(services, record, wait_s, track=False, version=version)


async def _background(services: ApiServices, record: CommandRecord, version: str) -> None:
    async with services.background_gate:  # thousands queued by one bulk call: a bounded few run
        await execute(services, record, services.default_wait_s, track=True, version=version)
