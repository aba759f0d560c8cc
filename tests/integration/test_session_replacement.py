"""One live session per station identity across gateway nodes: two ``app.start`` on one NATS."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import picows
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription

from csms import app
from streams.embedded import EmbeddedNats
from streams.presence import PresenceReader, StationPresence
from streams.presence import open_bucket as open_presence
from streams.replacement import CONTROL_PREFIX, replaced_subject
from tests.integration.api_support import AnsweringStation, api_client, until
from tests.integration.conftest import loopback_settings, ws_url

Pair = tuple[app.Running, app.Running]


@pytest.fixture
async def gateways(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Pair]:
    a = await app.start(loopback_settings(tmp_path / "a", nats_server.url, "gw-a"))
    b = await app.start(loopback_settings(tmp_path / "b", nats_server.url, "gw-b"))
    yield a, b
    await a.stop()
    await b.stop()


class Watch:
    """The test's own view of NATS: presence, and a tap on every replacement notice."""

    def __init__(self, nc: NatsClient, reader: PresenceReader, tap: Subscription) -> None:
        self.nc, self.reader, self.tap = nc, reader, tap
        self.notices: Counter[str] = Counter()

    async def holder(self, station_id: str) -> StationPresence | None:
        presence = await self.reader.get(station_id)
        return presence if presence is not None and presence.connected else None

    async def settled(self, *nodes: app.Running) -> None:
        """Every presence write applied, every notice those writes sent handled by its node:
        writes are flushed (a notice is sent inside its write), the nodes' connections flushed
        (the server routed the notices), ours flushed (the tap holds them all), then each node's
        count of handled notices reaches the count the tap saw for it."""
        for node in nodes:
            assert node.presence is not None
            assert await node.presence.flush(10)
        for node in nodes:
            await node.nc.flush()
        await self.nc.flush()
        while self.tap.pending_msgs:
            self.notices[(await self.tap.next_msg(timeout=1)).subject] += 1
        for node in nodes:
            assert node.replacements is not None
            replacements = node.replacements
            expected = self.notices[replaced_subject(node.settings.node_id)]
            await until(lambda: replacements.received == expected)  # noqa: B023


@pytest.fixture
async def watch(nats_server: EmbeddedNats) -> AsyncIterator[Watch]:
    nc = await nats.connect(nats_server.url)
    tap = await nc.subscribe(f"{CONTROL_PREFIX}.>")
    yield Watch(nc, PresenceReader(await open_presence(nc.jetstream())), tap)
    await nc.close()


async def closed_by_server(station: AnsweringStation) -> tuple[picows.WSCloseCode, str]:
    """Wait for the connection to close; the code and reason of the server's close frame."""
    await asyncio.wait_for(station.station.listener.closed.wait(), 10)
    handshake = station.station.transport.close_handshake
    assert handshake is not None
    assert handshake.recv is not None
    return handshake.recv.code, handshake.recv.reason


async def connect(node: app.Running, station_id: str) -> AnsweringStation:
    return await AnsweringStation.connect(ws_url(node, station_id), "ocpp1.6")


async def assert_the_live_holder(
    watch: Watch, node: app.Running, client: AnsweringStation, station_id: str
) -> None:
    """``client``'s connection is open and answered, and presence names its session on
    ``node`` as the station's holder."""
    assert not client.station.listener.closed.is_set()
    assert (await client.call("Heartbeat", {}, "h1"))[0] == 3
    presence = await watch.holder(station_id)
    assert presence is not None
    assert (presence.node_id, presence.session_id) == (
        node.settings.node_id,
        node.gateway.sessions[station_id].session_id,
    )


async def test_moving_to_another_gateway_closes_the_old_session(
    gateways: Pair, watch: Watch
) -> None:
    a, b = gateways
    first = await connect(a, "CP-MOVE")
    assert (await first.call("Heartbeat", {}, "h1"))[0] == 3
    await until(lambda: watch.holder("CP-MOVE"))
    second = await connect(b, "CP-MOVE")
    code, reason = await closed_by_server(first)
    assert (code, reason) == (
        picows.WSCloseCode.POLICY_VIOLATION,
        "replaced by a newer connection on gw-b",
    )
    await until(lambda: "CP-MOVE" not in a.gateway.sessions)
    presence = await watch.holder("CP-MOVE")
    assert presence is not None
    assert (presence.node_id, presence.session_id) == (
        "gw-b",
        b.gateway.sessions["CP-MOVE"].session_id,
    )
    async with api_client(f"http://127.0.0.1:{a.settings.api_port}") as client:
        response = await client.post("/api/v1/stations/CP-MOVE/commands/ClearCache", json={})
    assert response.status_code == 200, response.text
    assert second.calls == [("ClearCache", {})]
    await second.close()


async def test_a_local_reconnect_still_replaces_and_the_new_session_stays(
    gateways: Pair, watch: Watch
) -> None:
    a, b = gateways
    first = await connect(a, "CP-LOCAL")
    await watch.settled(a, b)
    second = await connect(a, "CP-LOCAL")
    code, reason = await closed_by_server(first)
    assert (code, reason) == (picows.WSCloseCode.POLICY_VIOLATION, "replaced by a newer connection")
    await watch.settled(a, b)  # A was told to close the first session: already gone, no-op
    assert watch.notices[replaced_subject("gw-a")] == 1
    await assert_the_live_holder(watch, a, second, "CP-LOCAL")
    await second.close()


async def test_a_to_b_to_a_keeps_the_last_connection(gateways: Pair, watch: Watch) -> None:
    a, b = gateways
    first = await connect(a, "CP-BACK")
    await watch.settled(a, b)
    second = await connect(b, "CP-BACK")
    assert (await closed_by_server(first))[1] == "replaced by a newer connection on gw-b"
    await watch.settled(a, b)
    third = await connect(a, "CP-BACK")
    assert (await closed_by_server(second))[1] == "replaced by a newer connection on gw-a"
    await watch.settled(a, b)
    await assert_the_live_holder(watch, a, third, "CP-BACK")
    assert "CP-BACK" not in b.gateway.sessions
    await third.close()


async def test_back_to_back_reconnects_across_gateways_keep_the_last(
    gateways: Pair, watch: Watch
) -> None:
    """A → B → A without waiting for presence in between: whatever order the two nodes' writes
    land in, the last connection (on A) is the one left open and named by presence; a notice
    about the first session reaching A after the third opened there closes nothing."""
    a, b = gateways
    first = await connect(a, "CP-RACE")
    second = await connect(b, "CP-RACE")
    third = await connect(a, "CP-RACE")
    await closed_by_server(first)
    await closed_by_server(second)
    await watch.settled(a, b)
    await assert_the_live_holder(watch, a, third, "CP-RACE")
    await third.close()
