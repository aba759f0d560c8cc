"""Which gateway node holds each station: a JetStream key-value bucket every process reads.

Keys: ``st.<token(station)>`` → :class:`StationPresence`, written by the holding gateway when a
session opens and closes (never per frame), and ``node.<token(node)>`` → :class:`NodeBeat`, a
heartbeat every ``beat_interval_s``. A station is reported connected only while its node's beat
is fresh, so a gateway that died without closing its sessions does not leave ghosts behind; for
a connected station ``last_seen`` is its node's last beat (the socket is kept alive by pings), for
a disconnected one the time its connection closed.

Writes go through one ordered queue per process: a session's close can never overtake its open,
and a close only touches the entry of the same session (compare-and-set on the revision), so a
station that moved to another node keeps that node's entry. An open is a compare-and-set too, so
exactly one writer replaces each entry; it has the replaced session closed (one live session per
station across nodes, ``streams.replacement``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from streams.kv_initial import current_entries
from streams.subjects import token

log = logging.getLogger(__name__)

BUCKET = "CSMS_PRESENCE"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StationPresence(msgspec.Struct, kw_only=True):
    station_id: str
    node_id: str
    ocpp_version: str
    connected: bool
    connected_at: str
    last_seen: str
    session_id: str
    disconnected_at: str | None = None


class NodeBeat(msgspec.Struct, kw_only=True):
    node_id: str
    at: str
    stations: int = 0


_station = msgspec.json.Decoder(StationPresence)
_beat = msgspec.json.Decoder(NodeBeat)
_encode = msgspec.json.Encoder().encode


def station_key(station_id: str) -> str:
    return f"st.{token(station_id)}"


def node_key(node_id: str) -> str:
    return f"node.{token(node_id)}"


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas)
        )


class PresenceReader:
    """Read side (the API): one station, or all of them, with node liveness applied."""

    def __init__(self, kv: KeyValue, beat_interval_s: float = 10.0) -> None:
        self._kv = kv
        self._stale_after = timedelta(seconds=3 * beat_interval_s)

    async def find(self, identity: str) -> StationPresence | None:
        """The presence of a station named as an operator types it: sessions are keyed by the
        identity as sent on 1.6 and lower-cased on 2.x (case-insensitive there), so ``CS01``
        finds the 2.x station ``cs01`` but never a 1.6 one. Its ``station_id`` is the session
        key that commands and the station's subject use."""
        presence = await self.get(identity)
        if presence is None and identity != identity.lower():
            presence = await self.get(identity.lower())
            if presence is not None and presence.ocpp_version == "1.6":
                return None
        return presence

    async def get(self, station_id: str) -> StationPresence | None:
        try:
            entry = await self._kv.get(station_key(station_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        presence = _station.decode(entry.value)
        if presence.connected:
            beat = await self._beat(presence.node_id)
            self._apply(presence, beat)
        return presence

    async def alive(self, node_id: str) -> bool:
        """Whether the node's beat is fresh (younger than three intervals)."""
        beat = await self._beat(node_id)
        return beat is not None and not self._stale(beat)

    async def all(self) -> list[StationPresence]:
        """Every station ever seen, sorted by station id (one watch over the bucket)."""
        stations: list[StationPresence] = []
        beats: dict[str, NodeBeat] = {}
        for entry in await current_entries(self._kv):
            if not entry.value or entry.operation is not None:
                continue
            if entry.key.startswith("node."):
                beat = _beat.decode(entry.value)
                beats[beat.node_id] = beat
            elif entry.key.startswith("st."):
                stations.append(_station.decode(entry.value))
        for presence in stations:
            if presence.connected:
                self._apply(presence, beats.get(presence.node_id))
        stations.sort(key=lambda p: p.station_id)
        return stations

    async def _beat(self, node_id: str) -> NodeBeat | None:
        try:
            entry = await self._kv.get(node_key(node_id))
        except KeyNotFoundError:
            return None
        return _beat.decode(entry.value) if entry.value else None

    def _apply(self, presence: StationPresence, beat: NodeBeat | None) -> None:
        if beat is None:
            presence.connected = False
            return
        if self._stale(beat):
            presence.connected = False
        presence.last_seen = max(presence.last_seen, beat.at)

    def _stale(self, beat: NodeBeat) -> bool:
        at = datetime.fromisoformat(beat.at.replace("Z", "+00:00"))
        return datetime.now(UTC) - at > self._stale_after


Write = StationPresence | tuple[str, str, str]
"""An open (the new entry) or a close (station, session, time)."""

WRITERS = 8
"""Parallel writers; one station always goes to the same one, so its writes stay in order."""

Replaced = Callable[[StationPresence, StationPresence], Awaitable[None]]
"""``(old, new)``: have ``old``'s session closed on its node, ``new`` holds the station now
(``streams.replacement.ReplacementNotices.tell``; must not raise)."""


def opened_later_elsewhere(holder: StationPresence, opening: StationPresence) -> bool:
    """Whether the entry's ``holder`` is a live-looking session on another node that opened
    after ``opening`` (whose write was delayed, e.g. retried while NATS was away): then
    ``opening`` is the stale one and must not displace it. Within one node the write order is
    the connect order (one queue per station); across nodes the connect times decide, which
    assumes the gateways' clocks agree to well under a station's reconnect delay."""
    return (
        holder.connected
        and holder.node_id != opening.node_id
        and holder.connected_at > opening.connected_at
    )


class PresenceWriter:
    """Write side (a gateway): ``opened``/``closed`` are synchronous (called from socket
    callbacks) and queue their write; a few tasks apply them, each station's in order, and
    retry while NATS is away (a connect storm or an outage delays presence, never loses it)."""

    def __init__(
        self,
        kv: KeyValue,
        node_id: str,
        max_retry_delay_s: float = 2.0,
        on_replaced: Replaced | None = None,
    ) -> None:
        self._kv = kv
        self.node_id = node_id
        self._on_replaced = on_replaced
        self._reader = PresenceReader(kv)
        self._max_retry_delay_s = max_retry_delay_s
        self._queues: list[asyncio.Queue[Write]] = [asyncio.Queue() for _ in range(WRITERS)]
        self._tasks: list[asyncio.Task[None]] = []
        self._beating: asyncio.Task[None] | None = None
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, stations: Callable[[], int], beat_interval_s: float = 10.0) -> None:
        """Start applying writes, and beating every ``beat_interval_s`` with the number of
        stations the node holds."""
        self._reader = PresenceReader(self._kv, beat_interval_s)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(queue)) for queue in self._queues]
        self._tasks.append(loop.create_task(self._sweep(utc_now())))
        self._beating = loop.create_task(self._beat_loop(stations, beat_interval_s))

    async def _sweep(self, started_at: str) -> None:
        """A node restarting under the same id (a container's pid 1, a stable host name) would
        revive the entries its previous life never closed: close every entry of this node
        older than this start (its new sessions are younger)."""
        try:
            stale: list[tuple[str, int, StationPresence]] = []
            for entry in await current_entries(self._kv, "st.>"):
                if entry.value and entry.operation is None and entry.revision is not None:
                    presence = _station.decode(entry.value)
                    mine = presence.node_id == self.node_id and presence.connected
                    if mine and presence.connected_at < started_at:
                        stale.append((entry.key, entry.revision, presence))
        except (NatsError, OSError, TimeoutError) as err:
            log.warning("presence sweep failed: %s", err)
            return
        for key, revision, presence in stale:
            presence.connected = False
            presence.disconnected_at = started_at
            with contextlib.suppress(KeyWrongLastSequenceError, NatsError):
                await self._kv.update(key, _encode(presence), last=revision)
        if stale:
            log.info("presence: closed %d entries of this node's previous run", len(stale))

    async def _beat_loop(self, stations: Callable[[], int], interval_s: float) -> None:
        while True:
            try:
                await self.beat(stations())
            except (NatsError, OSError, TimeoutError) as err:
                log.warning("presence beat failed: %s", err)
            await asyncio.sleep(interval_s)

    def opened(self, station_id: str, ocpp_version: str, session_id: str) -> None:
        now = utc_now()
        self._put(
            StationPresence(
                station_id=station_id,
                node_id=self.node_id,
                ocpp_version=ocpp_version,
                connected=True,
                connected_at=now,
                last_seen=now,
                session_id=session_id,
            )
        )

    def closed(self, station_id: str, session_id: str) -> None:
        self._put((station_id, session_id, utc_now()))

    def _put(self, item: Write) -> None:
        station_id = item.station_id if isinstance(item, StationPresence) else item[0]
        self._pending += 1
        self._idle.clear()
        self._queues[zlib.crc32(station_id.encode()) % WRITERS].put_nowait(item)

    async def beat(self, stations: int) -> None:
        beat = NodeBeat(node_id=self.node_id, at=utc_now(), stations=stations)
        await self._kv.put(node_key(self.node_id), _encode(beat))

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued write is applied (used before draining NATS); False: some
        were still queued after ``timeout_s`` (NATS away; they keep being retried)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("presence: %d writes still queued after %.0f s", self._pending, timeout_s)
            return False
        return True

    async def stop(self) -> None:
        """Apply what is queued (the closes of a drain), then retire the node's beat."""
        if self._beating is not None:
            self._beating.cancel()
        await self.flush()
        with contextlib.suppress(Exception):
            await self._kv.delete(node_key(self.node_id))
        for task in (*self._tasks, self._beating):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, queue: asyncio.Queue[Write]) -> None:
        while True:
            item = await queue.get()
            delay = 0.05
            while True:
                try:
                    await self._apply(item)
                    break
                except (NatsError, OSError, TimeoutError) as err:
                    log.warning("presence write failed (%s); retrying in %.2fs", err, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay_s)
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def _apply(self, item: Write) -> None:
        if isinstance(item, StationPresence):
            await self._open(item)
            return
        station_id, session_id, at = item
        try:
            entry = await self._kv.get(station_key(station_id))
        except KeyNotFoundError:
            return
        if not entry.value:
            return
        presence = _station.decode(entry.value)
        if presence.session_id != session_id:
            return  # a newer session (here or on another node) owns the entry
        presence.connected = False
        presence.disconnected_at = presence.last_seen = at
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.update(entry.key, _encode(presence), last=entry.revision)

    async def _open(self, opening: StationPresence) -> None:
        """Write an open by compare-and-set over the entry it read, so each entry is replaced
        by exactly one writer, which then has the replaced session closed (if the entry was
        still connected: a close already applied means its node saw it go). A session that
        opened after ``opening`` on a live node keeps the entry; ``opening`` is closed."""
        key = station_key(opening.station_id)
        while True:
            entry: KeyValue.Entry | None
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                entry = None
            holder = _station.decode(entry.value) if entry is not None and entry.value else None
            if holder is not None and holder.session_id == opening.session_id:
                return  # an earlier attempt was applied but its answer was lost
            if (
                holder is not None
                and opened_later_elsewhere(holder, opening)
                and await self._reader.alive(holder.node_id)
            ):
                log.info(
                    "presence: %s reconnected on %s after this session opened; closing this one",
                    opening.station_id,
                    holder.node_id,
                )
                await self._replaced(opening, holder)
                return
            try:
                if entry is None:
                    await self._kv.create(key, _encode(opening))
                else:
                    await self._kv.update(key, _encode(opening), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another node wrote in between: decide again on its entry
            if holder is not None and holder.connected:
                await self._replaced(holder, opening)
            return

    async def _replaced(self, old: StationPresence, new: StationPresence) -> None:
        if self._on_replaced is not None:
            await self._on_replaced(old, new)
