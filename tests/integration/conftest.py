"""Fixtures that start real components: a nats-server with JetStream, and the CSMS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import DeliverPolicy

from csms import app
from csms.domain.events import FrameEvent
from csms.settings import Settings
from streams import envelope
from streams.embedded import EmbeddedNats, free_port
from streams.subjects import STREAM, subject


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    yield server
    await server.stop()


def loopback_settings(data_dir: Path, nats_url: str, node_id: str = "test-node") -> Settings:
    """A CSMS on loopback with free ports, using the given NATS."""
    return Settings(
        host="127.0.0.1",
        ocpp_port=0,
        api_port=free_port(),
        data_dir=data_dir,
        nats_url=nats_url,
        node_id=node_id,
    )


@pytest.fixture
async def csms(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[app.Running]:
    running = await app.start(loopback_settings(tmp_path, nats_server.url))
    yield running
    await running.stop()


async def restarted(running: app.Running, **config: Any) -> app.Running:
    """The same CSMS with its listener restarted under changed ``GatewayConfig`` fields."""
    running.gateway.config = replace(running.gateway.config, **config)
    await running.gateway.stop()
    running.gateway.sessions.clear()
    await running.gateway.start()
    return running


def ws_url(running: app.Running, station_id: str) -> str:
    return f"ws://127.0.0.1:{running.gateway.port}/ocpp/{station_id}"


async def read_events(nats_url: str, station_id: str, count: int) -> list[FrameEvent]:
    """Read the first ``count`` events of a station from the stream, in stream order (a stream
    message may hold several events)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject(station_id), stream=STREAM, config=None, durable=None)
        events: list[FrameEvent] = []
        while len(events) < count:
            for msg in await sub.fetch(count - len(events), timeout=5):
                events.extend(envelope.decode_many(msg.data))
                await msg.ack()
        return events
    finally:
        await nc.close()


async def read_all_events(nats_url: str, station_id: str) -> list[FrameEvent]:
    """Every event of a station currently in the stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM, subjects_filter=subject(station_id))
        messages = (info.state.subjects or {}).get(subject(station_id), 0)
        if not messages:
            return []
        sub = await js.pull_subscribe(subject(station_id), stream=STREAM, config=None, durable=None)
        events: list[FrameEvent] = []
        fetched = 0
        while fetched < messages:
            batch = await sub.fetch(messages - fetched, timeout=5)
            fetched += len(batch)
            for msg in batch:
                events.extend(envelope.decode_many(msg.data))
                await msg.ack()
        return events
    finally:
        await nc.close()


_ = DeliverPolicy  # the default pull consumer delivers from the start of the stream
