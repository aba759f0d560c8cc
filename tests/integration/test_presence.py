"""streams.presence against a real nats-server: ordering, session ownership, node liveness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue

from streams.embedded import EmbeddedNats
from streams.presence import PresenceReader, PresenceWriter, open_bucket
from tests.integration.api_support import until


@pytest.fixture
async def bucket(nats_server: EmbeddedNats) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_server.url)
    yield await open_bucket(nc.jetstream())
    await nc.close()


async def started(kv: KeyValue, node_id: str) -> PresenceWriter:
    writer = PresenceWriter(kv, node_id)
    writer.start(lambda: 0, beat_interval_s=60)
    assert await writer.flush(60)
    return writer


async def test_open_then_close_in_order(bucket: KeyValue) -> None:
    writer = await started(bucket, "n1")
    reader = PresenceReader(bucket)
    writer.opened("CP1", "1.6", "s1")
    writer.closed("CP1", "s1")  # queued right behind the open: never overtakes it
    assert await writer.flush(60)
    presence = await reader.get("CP1")
    assert presence is not None
    assert presence.connected is False
    assert presence.disconnected_at is not None
    await writer.stop()


async def test_a_late_close_of_a_replaced_session_changes_nothing(bucket: KeyValue) -> None:
    first, second = await started(bucket, "n1"), await started(bucket, "n2")
    reader = PresenceReader(bucket)
    first.opened("cp2", "2.0.1", "old")
    assert await first.flush(60)
    second.opened("cp2", "2.0.1", "new")  # the station moved to another node
    assert await second.flush(60)
    first.closed("cp2", "old")  # the old node notices its socket closed
    assert await first.flush(60)
    presence = await reader.get("cp2")
    assert presence is not None
    assert (presence.node_id, presence.session_id, presence.connected) == ("n2", "new", True)
    assert [p.station_id for p in await reader.all()] == ["cp2"]
    await first.stop()
    await second.stop()


async def test_a_silent_node_turns_its_stations_offline(bucket: KeyValue) -> None:
    writer = await started(bucket, "n3")  # one beat at start, then none for 60 s
    reader = PresenceReader(bucket, beat_interval_s=0.05)  # stale after 0.15 s
    writer.opened("CP3", "1.6", "s3")
    assert await writer.flush(60)

    async def offline() -> bool:
        presence = await reader.get("CP3")
        return presence is not None and not presence.connected

    await until(offline)
    [listed] = await reader.all()
    assert listed.connected is False
    await writer.beat(1)  # alive again
    presence = await reader.get("CP3")
    assert presence is not None
    assert presence.connected is True
    await writer.stop()


async def test_a_node_restarting_under_its_name_closes_its_old_entries(bucket: KeyValue) -> None:
    before = await started(bucket, "same")
    before.opened("CP4", "1.6", "s-old")
    assert await before.flush(60)
    # crash: no close, no stop; the node comes back under the same id and beats again
    after = await started(bucket, "same")
    reader = PresenceReader(bucket)

    async def closed() -> bool:
        presence = await reader.get("CP4")
        return presence is not None and not presence.connected

    await until(closed)
    after.opened("CP4", "1.6", "s-new")  # it reconnects to the restarted node
    assert await after.flush(60)
    presence = await reader.get("CP4")
    assert presence is not None
    assert (presence.session_id, presence.connected) == ("s-new", True)
    await after.stop()
    await before.stop()  # (its tasks, for a clean loop)
