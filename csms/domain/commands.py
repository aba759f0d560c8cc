"""CSMS-initiated commands as values: what the API asks a gateway, and what came of it. Pure.

A command travels from any API process to the one gateway process holding the station's socket
(``streams.commands``); the gateway runs it (``csms.gateway.commands``) and answers with a
:class:`CommandOutcome`. Both are msgspec structs so every process speaks the same wire format.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

Outcome = Literal[
    "answered",  # the station's CALLRESULT, validated against the schema
    "call_error",  # the station answered with a CALLERROR (code, description)
    "bad_answer",  # the station's CALLRESULT does not conform to the schema
    "invalid",  # our payload was refused before sending (code, description)
    "timeout",  # no answer within the command's timeout
    "disconnected",  # the connection closed before the answer
    "not_here",  # the gateway that was asked does not hold the station (any more)
    "offline",  # no gateway holds the station
]

Status = Literal["pending", "sent", "answered", "error", "timed_out"]

STATUS_OF: Final[dict[str, Status]] = {
    "answered": "answered",
    "timeout": "timed_out",
    "call_error": "error",
    "bad_answer": "error",
    "invalid": "error",
    "disconnected": "error",
    "not_here": "error",
    "offline": "error",
}


class CommandRequest(msgspec.Struct, frozen=True, kw_only=True):
    command_id: str
    station_id: str
    action: str
    payload: dict[str, Any]
    timeout_s: float
    requested_by: str = ""


class CommandOutcome(msgspec.Struct, frozen=True, kw_only=True):
    command_id: str
    outcome: Outcome
    result: dict[str, Any] | None = None
    code: str | None = None
    description: str | None = None
    node_id: str | None = None


class CommandRecord(msgspec.Struct, kw_only=True):
    """A command's status as ``GET /api/v1/commands/{id}`` shows it (kept in a KV bucket)."""

    command_id: str
    station_id: str
    action: str
    payload: dict[str, Any]
    requested_by: str
    requested_at: str
    status: Status
    updated_at: str
    outcome: CommandOutcome | None = None


class CommandRecorded(msgspec.Struct, frozen=True, kw_only=True):
    """The stream event of a finished command: who asked, what was sent, the answer.

    Wire type ``csms.command`` version 1 (the frames themselves are ``csms.frame`` events)."""

    command_id: str
    station_id: str
    action: str
    payload: dict[str, Any]
    requested_by: str
    requested_at: str
    finished_at: str
    outcome: CommandOutcome
    type: str = "csms.command"
    version: int = 1
