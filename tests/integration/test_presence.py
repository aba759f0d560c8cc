"""streams.presence against a real nats-server: ordering, session ownership, node liveness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue

from streams.embedded import EmbeddedNats
from streams.presence import (
    PresenceReader,
    PresenceWriter,
    Replaced,
    StationPresence,
    open_bucket,
    utc_now,
)
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


Told = list[tuple[str, str, str]]
"""(old node, old session, new session) of each replacement a writer reported."""


def recording(told: Told) -> Replaced:
    async def on_replaced(old: StationPresence, new: StationPresence) -> None:
        told.append((old.node_id, old.session_id, new.session_id))

    return on_replaced


async def test_an_open_reports_the_connected_session_it_replaces(bucket: KeyValue) -> None:
    told: Told = []
    first = PresenceWriter(bucket, "n1", on_replaced=recording(told))
    second = PresenceWriter(bucket, "n2", on_replaced=recording(told))
    for writer in (first, second):
        writer.start(lambda: 0, beat_interval_s=60)
    first.opened("CP5", "1.6", "a1")
    assert await first.flush(60)
    assert told == []  # nothing held the station
    second.opened("CP5", "1.6", "b1")
    assert await second.flush(60)
    assert told == [("n1", "a1", "b1")]
    second.closed("CP5", "b1")
    assert await second.flush(60)
    first.opened("CP5", "1.6", "a2")  # a closed entry is replaced without a notice
    assert await first.flush(60)
    assert told == [("n1", "a1", "b1")]
    await first.stop()
    await second.stop()


async def test_a_delayed_open_does_not_displace_a_later_session(bucket: KeyValue) -> None:
    """An open whose write was held back (NATS away from its node) while the station connected
    to another node: the later session keeps the entry and the delayed one is reported."""
    told: Told = []
    late = PresenceWriter(bucket, "n1", on_replaced=recording(told))
    late.opened("CP6", "1.6", "delayed")  # queued, not applied: the writer is not started
    opened_at = utc_now()
    await until(lambda: utc_now() > opened_at)  # connect times have millisecond resolution
    other = await started(bucket, "n2")
    other.opened("CP6", "1.6", "later")
    assert await other.flush(60)
    late.start(lambda: 0, beat_interval_s=60)
    assert await late.flush(60)
    assert told == [("n1", "delayed", "later")]
    presence = await PresenceReader(bucket).get("CP6")
    assert presence is not None
    assert (presence.node_id, presence.session_id) == ("n2", "later")
    await late.stop()
    await other.stop()
