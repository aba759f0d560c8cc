"""Run a CSMS-initiated command on the session that holds the station, as an outcome value.

Transport-free: ``csms.app`` hands requests from any transport (NATS in ``streams.commands``) to
:func:`execute`. Every path ends in a :class:`~csms.domain.commands.CommandOutcome` within the
command's ``timeout_s``, including the wait for the station's previous CALL (one at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from csms.domain.commands import CommandOutcome, CommandRequest, Outcome
from csms.gateway.session import CallErrorReceivedError, StationSession
from csms.protocol import OcppError


async def execute(
    sessions: Mapping[str, StationSession], node_id: str, request: CommandRequest
) -> CommandOutcome:
    def outcome(
        kind: Outcome,
        result: dict[str, Any] | None = None,
        code: str | None = None,
        description: str | None = None,
    ) -> CommandOutcome:
        return CommandOutcome(
            command_id=request.command_id,
            outcome=kind,
            result=result,
            code=code,
            description=description,
            node_id=node_id,
        )

    session = sessions.get(request.station_id)
    if session is None:
        return outcome("not_here", description=f"{request.station_id} is not on {node_id}")
    try:
        session.codec.check_request(request.action, request.payload)
    except OcppError as err:
        return outcome("invalid", code=err.code, description=err.description)
    try:
        async with asyncio.timeout(request.timeout_s):
            result = await session.call(request.action, request.payload, request.timeout_s)
    except CallErrorReceivedError as err:
        return outcome("call_error", code=err.code, description=err.description)
    except OcppError as err:  # checked above: so the station's answer does not conform
        return outcome("bad_answer", code=err.code, description=err.description)
    except TimeoutError:
        return outcome("timeout", description=f"no answer within {request.timeout_s:g} s")
    except ConnectionError:
        return outcome("disconnected", description="the connection closed before the answer")
    return outcome("answered", result=result)
