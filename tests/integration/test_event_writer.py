"""The lean event writer against a real nats-server: stored means acknowledged by JetStream,
retries never duplicate, and it heals by itself when NATS comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from csms.domain.events import FrameEvent
from streams import event_writer
from streams.embedded import EmbeddedNats, free_port
from streams.event_writer import EventWriter
from streams.nats_servers import servers
from streams.provision import StreamSettings, ensure_stream
from streams.subjects import STREAM


def event(station: str, seq: int) -> FrameEvent:
    return FrameEvent(
        event_id=f"node-{station}-{seq}",
        kind="frame",
        station_id=station,
        ocpp_version="1.6",
        direction="in",
        message_type=2,
        unique_id=str(seq),
        action="Heartbeat",
        raw=f'[2,"{seq}","Heartbeat",{{}}]',
        received_at_ns=seq,
        node_id="node",
        session_id=station,
        seq=seq,
    )


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition the writer exposes (it has no event for it) with a deadline."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(STREAM)).state.messages
    finally:
        await nc.close()


async def provision(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream(), StreamSettings())
    finally:
        await nc.close()


def test_which_urls_it_speaks() -> None:
    assert event_writer.supports("nats://127.0.0.1:4222")
    assert event_writer.supports("nats://a:1,nats://user:pw@b:2,c:3")
    assert not event_writer.supports("tls://nats.example:4222")
    assert not event_writer.supports("nats://a:1,tls://b:2")


async def test_every_submission_is_acknowledged_once_in_order(nats_server: EmbeddedNats) -> None:
    await provision(nats_server.url)
    writer = EventWriter(nats_server.url)
    await writer.start()
    try:
        sequences = await asyncio.gather(
            *(writer.publish(event(f"CP{i % 7}", i)) for i in range(500))
        )
        assert sorted(sequences) == list(range(1, 501))
        assert sequences == sorted(sequences)  # one connection: stored in submission order
        again = await writer.publish(event("CP0", 0))  # a retry of an earlier message
        assert again == sequences[0]
        assert await stream_messages(nats_server.url) == 500
    finally:
        await writer.close()


async def test_waits_for_the_stream_and_stores_when_it_appears(
    nats_server: EmbeddedNats,
) -> None:
    writer = EventWriter(nats_server.url, max_retry_delay_s=0.1)
    await writer.start()
    try:
        pending = asyncio.ensure_future(writer.publish(event("CP1", 1)))
        await until(lambda: writer.failures > 0)  # "no responders": a subject without a stream
        assert not pending.done()
        assert not writer.healthy
        await provision(nats_server.url)
        assert await asyncio.wait_for(pending, 10) == 1
        assert writer.healthy
    finally:
        await writer.close()


async def test_heals_after_nats_restarts_without_losing_or_duplicating(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    await provision(server.url)
    writer = EventWriter(server.url, ack_timeout_s=0.5, max_retry_delay_s=0.2)
    await writer.start()
    try:
        assert await writer.publish(event("CP1", 0)) == 1
        await server.kill()
        pending = [asyncio.ensure_future(writer.publish(event("CP1", i))) for i in range(1, 51)]
        await until(lambda: not writer.healthy)
        assert not any(p.done() for p in pending)
        restarted = EmbeddedNats(tmp_path / "nats", port=server.port)
        await restarted.start()
        try:
            sequences = await asyncio.wait_for(asyncio.gather(*pending), 30)
            assert sorted(sequences) == list(range(2, 52))
            assert await stream_messages(restarted.url) == 51
        finally:
            await writer.close()
            await restarted.stop()
    finally:
        await writer.close()


@pytest.mark.parametrize("url", ["tls://127.0.0.1:1"])
def test_refuses_urls_it_cannot_speak(url: str) -> None:
    with pytest.raises(event_writer.UnsupportedServerError):
        EventWriter(url)


async def test_a_cluster_url_list_skips_a_server_that_is_down(nats_server: EmbeddedNats) -> None:
    await provision(nats_server.url)
    down = f"nats://127.0.0.1:{free_port()}"
    writer = EventWriter(f"{down}, {nats_server.url}")
    await writer.start()
    try:
        assert await writer.publish(event("CP1", 1)) == 1
    finally:
        await writer.close()


def test_the_servers_of_a_url_setting() -> None:
    assert servers("nats://a:1, nats://b:2,,") == ["nats://a:1", "nats://b:2"]
    with pytest.raises(ValueError, match="empty"):
        servers(" , ")
