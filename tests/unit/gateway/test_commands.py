"""csms.gateway.commands.execute: every path ends in an outcome value within the timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from csms.domain.commands import CommandRequest
from csms.gateway.commands import execute
from csms.gateway.session import CallErrorReceivedError, StationSession
from csms.protocol import Codec, codec_for


class FakeSession:
    """What ``execute`` uses of a session: its codec and ``call``."""

    def __init__(self, codec: Codec, call: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.codec = codec
        self._call = call
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def call(
        self, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        self.sent.append((action, payload))
        return await self._call()


def request(
    action: str = "ClearCache", payload: Any = None, timeout_s: float = 5
) -> CommandRequest:
    return CommandRequest(
        command_id="c1",
        station_id="CP1",
        action=action,
        payload={} if payload is None else payload,
        timeout_s=timeout_s,
    )


async def run(session: FakeSession | None, command: CommandRequest) -> Any:
    sessions = {"CP1": cast(StationSession, session)} if session is not None else {}
    return await execute(sessions, "node-1", command)


async def answer() -> dict[str, Any]:
    return {"status": "Accepted"}


async def refuse() -> dict[str, Any]:
    raise CallErrorReceivedError("NotSupported", "no")


async def never() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {}


async def drop() -> dict[str, Any]:
    raise ConnectionError("station disconnected")


@pytest.mark.parametrize(
    ("call", "outcome", "code"),
    [
        (answer, "answered", None),
        (refuse, "call_error", "NotSupported"),
        (drop, "disconnected", None),
    ],
)
async def test_outcomes(
    call: Callable[[], Awaitable[dict[str, Any]]], outcome: str, code: str | None
) -> None:
    result = await run(FakeSession(codec_for("1.6"), call), request())
    assert result.outcome == outcome
    assert result.code == code
    assert result.node_id == "node-1"
    assert result.command_id == "c1"


async def test_answer_is_the_result() -> None:
    result = await run(FakeSession(codec_for("1.6"), answer), request())
    assert result.result == {"status": "Accepted"}


async def test_timeout_bounds_the_whole_wait() -> None:
    result = await run(FakeSession(codec_for("1.6"), never), request(timeout_s=0.05))
    assert result.outcome == "timeout"


async def test_not_here() -> None:
    assert (await run(None, request())).outcome == "not_here"


async def test_invalid_payload_is_never_sent() -> None:
    session = FakeSession(codec_for("2.0.1"), answer)
    result = await run(session, request("Reset", {"type": "Hard"}))  # 1.6 spelling on 2.0.1
    assert result.outcome == "invalid"
    assert result.code == "PropertyConstraintViolation"
    assert session.sent == []
