"""The projector's loop against a scripted subscription (no NATS): a crash between insert and
ack is never lost behind another error, a plain asyncio timeout from a fetch means "nothing
yet", and an ack that times out does not stop the projector (its rows are in)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from streams import envelope, schema
from streams.projections.projector import (
    InjectedCrashError,
    Projector,
    ProjectorConfig,
    _NatsPySource,
)
from streams.store import Store
from tests.chdb_engine import engine_url, fresh_database
from tests.projection_events import ScriptedStation


class FakeMsg:
    def __init__(self, seq: int, data: bytes, ack_fails: bool = False) -> None:
        self.subject = "csms.evt.v1.CP1"
        self.data = data
        self.reply = f"$JS.ACK.CSMS_EVENTS.c.1.{seq}.{seq}.1767225600000000000.0"
        self.acked = False
        self.ack_fails = ack_fails

    async def ack(self) -> None:
        self.acked = True

    async def ack_sync(self, timeout: float = 1.0) -> None:
        if self.ack_fails:
            raise TimeoutError
        self.acked = True


class FakeSub:
    """Hands out the scripted fetch results, then asyncio timeouts (as nats-py can)."""

    def __init__(self, script: list[list[FakeMsg] | BaseException]) -> None:
        self.script = script

    async def fetch(self, batch: int, timeout: float) -> list[FakeMsg]:
        await asyncio.sleep(0)
        step = self.script.pop(0) if self.script else TimeoutError()
        if isinstance(step, BaseException):
            raise step
        return step

    async def unsubscribe(self) -> None:
        pass


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("loop"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


def messages(first: int, count: int, ack_fails: bool = False) -> list[FakeMsg]:
    st = ScriptedStation("CP1")
    return [
        FakeMsg(seq, envelope.encode_many([st.connected()]), ack_fails)
        for seq in range(first, first + count)
    ]


def projector(store: Store, sub: FakeSub, **kwargs: Any) -> Projector:
    config = ProjectorConfig(max_messages=2, max_delay_s=0.0, fetch_timeout_s=0.01)
    p = Projector(None, store, config, **kwargs)  # type: ignore[arg-type]

    async def source() -> Any:
        return _NatsPySource(sub)  # type: ignore[arg-type]

    p._source = source  # type: ignore[method-assign]
    return p


async def test_a_crash_after_insert_surfaces_even_if_a_fetch_fails_meanwhile(
    store: Store,
) -> None:
    async def crash(_: int) -> None:
        raise InjectedCrashError("after insert")

    first = messages(1, 2)
    sub = FakeSub([first, RuntimeError("NATS away"), *[TimeoutError()] * 5])
    p = projector(store, sub, after_insert=crash)
    with pytest.raises(InjectedCrashError):
        await asyncio.wait_for(p.run(), 30)
    assert not any(m.acked for m in first)
    (row,) = await store.query("SELECT count() AS n FROM events")
    assert row["n"] == 2


async def test_timeouts_are_idle_fetches_and_an_uncertain_ack_is_not_fatal(
    store: Store,
) -> None:
    batch = messages(1, 2, ack_fails=True)
    later = messages(3, 2)
    sub = FakeSub([NatsTimeoutError(), batch, TimeoutError(), later])
    p = projector(store, sub)
    await asyncio.wait_for(p.run_until(4), 30)
    assert p.stats.last_seq == 4
    assert all(m.acked for m in later)
    (row,) = await store.query("SELECT count() AS n FROM events")
    assert row["n"] == 4
