"""Start-up retries JetStream requests that time out (a cluster electing a leader) and gives up
on anything else, or after its deadline."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import ServiceUnavailableError

from csms.app import until_ready


def test_a_timeout_then_success_is_retried() -> None:
    failures = [TimeoutError(), ServiceUnavailableError()]

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "ready"

    assert asyncio.run(until_ready("the stream", attempt, retry_s=10)) == "ready"
    assert failures == []


def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad settings")

    with pytest.raises(ValueError, match="bad settings"):
        asyncio.run(until_ready("the stream", attempt, retry_s=10))
    assert calls == 1


def test_it_gives_up_after_the_deadline() -> None:
    async def attempt() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        asyncio.run(until_ready("the stream", attempt, retry_s=0.3))
