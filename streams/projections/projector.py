"""The projector: a durable JetStream pull consumer folding the event stream into ClickHouse.

Loop: fetch messages → fold them (pure, in a worker thread so the event loop stays free) →
insert each table's rows → ack every message of the batch. A batch closes at
``max_messages`` or ``max_rows`` or ``max_delay_s`` after its first message. A crash anywhere
before the ack means redelivery, and redelivered messages fold to the same rows with the same
keys: ReplacingMergeTree plus FINAL/aggregating reads make that invisible (exactly-once effect).
A failing insert is retried with back-off, never skipped; a poison event is a row, never a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from clickhouse_connect.driver.exceptions import DataError
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from streams.projections.compiled import fold_batch_compiled
from streams.projections.fold import fold_message
from streams.projections.pull import Fetched, PullClient, PullError, usable
from streams.projections.rows import COLUMNS, WHOLE_MESSAGE, Message, NativeBlock, Row, Rows
from streams.store import StatementError, Store
from streams.subjects import ALL_EVENTS, STREAM

log = logging.getLogger(__name__)

DURABLE = "csms-projections"
ACK_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    durable: str | None = DURABLE
    """None: an ephemeral consumer from the stream's start (rebuild, benchmarks)."""
    max_messages: int = 10_000
    """Each batch's insert has a fixed engine cost (several ms per table and view): 10,000
    messages (about 15 MB of MeterValues) cost a sixth less CPU per row than 5,000. A caught-up
    projector closes its batch as soon as a fetch finds nothing more, so this only sizes the
    batches of catching up."""
    max_rows: int = 100_000
    max_delay_s: float = 0.5
    fetch_timeout_s: float = 0.5
    ack_wait_s: float = 60.0
    max_ack_pending: int = 100_000
    start_seq: int | None = None
    """A new durable consumer starts here (after a rebuild) instead of at the first event."""


@dataclass(slots=True)
class ProjectorStats:
    batches: int = 0
    messages: int = 0
    rows: int = 0
    poison: int = 0
    last_seq: int = 0
    """Highest stream sequence inserted and acknowledged."""
    insert_failures: int = 0
    last_error: str | None = None
    inserted_at: float = field(default_factory=time.monotonic)


async def durable_for(store: Store) -> str:
    """The durable consumer of this store: ``csms-projections-<id>``, the id kept in the store
    itself (created on first use)."""
    sql = "SELECT argMin(id, (created_at, id)) AS id, count() AS n FROM projector_identity"
    (row,) = await store.query(sql)
    if not row["n"]:
        await store.insert("projector_identity", [[uuid.uuid4().hex[:12]]], ["id"])
        (row,) = await store.query(sql)
    return f"{DURABLE}-{row['id']}"


NATIVE_INSERT_SETTINGS: Final = {"optimize_on_insert": 0}
"""The compiled fold's blocks (and the meter-value view they feed) are not collapsed at insert:
every read of these tables is FINAL or an idempotent aggregate, which collapses them anyway,
and a batch almost never holds a key twice (the collapse pass was a fifth of the engine's
insert time)."""

AfterInsert = Callable[[int], Awaitable[None]]
"""Test hook: called with the batch's highest stream sequence after the insert, before the ack."""


async def write_rows(store: Store, rows: Rows, database: str | None = None) -> None:
    """Insert every table's rows (once; the projector retries around this)."""
    for table, table_rows in rows.tables.items():
        await store.insert(table, table_rows, COLUMNS[table], database=database)
    for block in rows.native:
        await store.insert_native(block.table, COLUMNS[block.table], block.data, database)


def fold_batch(messages: list[Message], *, extra_seen: list[Row] | None = None) -> Rows:
    """Fold (stream sequence, subject, data, stored ms) messages; pure. ``station_seen``
    keeps one row per station (its latest time in the batch, ``extra_seen`` included: the
    table keeps the latest). The reference fold: the projector's
    :func:`~streams.projections.compiled.fold_batch_compiled` gives the same rows."""
    rows = Rows()
    tables = list(rows.tables.values())
    for seq, subject, data, stored_ms in messages:
        sizes = [len(table) for table in tables]
        try:
            fold_message(seq, subject, data, stored_ms, into=rows)
        except Exception as err:  # a fold bug must not block the stream
            log.exception("projector: folding stream message %d failed", seq)
            for table, size in zip(tables, sizes, strict=True):
                del table[size:]  # nothing of the message but its poison row
            rows.add("poison_events", _message_poison(seq, subject, data, err, stored_ms))
    rows.tables["station_seen"] = _latest_seen([*rows.tables["station_seen"], *(extra_seen or ())])
    return rows


def fold_batch_fast(messages: list[Message]) -> Rows:
    """The projector's fold: the compiled one for what it accepts, :func:`fold_batch` for the
    rest (same rows)."""
    return fold_batch_compiled(messages, fold_batch)


def _latest_seen(rows: list[Row]) -> list[Row]:
    latest: dict[str, int] = {}
    for station_id, at_ns in rows:
        if at_ns > latest.get(station_id, -1):
            latest[station_id] = at_ns
    return [[station_id, at_ns] for station_id, at_ns in latest.items()]


def _message_poison(seq: int, subject: str, data: bytes, err: Exception, stored_ms: int) -> Row:
    error = f"fold: {type(err).__name__}: {err}"[:2000]
    return [seq, WHOLE_MESSAGE, subject, error, data.decode(errors="replace")[:65536], stored_ms]


class Projector:
    """Run with :meth:`start` / :meth:`stop`, or :meth:`run_until` for a bounded replay."""

    def __init__(
        self,
        js: JetStreamContext,
        store: Store,
        config: ProjectorConfig | None = None,
        *,
        database: str | None = None,
        after_insert: AfterInsert | None = None,
        nats_url: str | None = None,
    ) -> None:
        """``nats_url``: fetch and ack over :mod:`streams.projections.pull` (plain nats://
        URLs; anything else, or None, goes through nats-py's ``fetch``)."""
        self.js = js
        self.nats_url = nats_url if nats_url is not None and usable(nats_url) else None
        self.store = store
        self.config = config or ProjectorConfig()
        self.database = database or store.database
        self.after_insert = after_insert
        self.stats = ProjectorStats()
        self._fold = fold_batch_fast if store.accepts_native else fold_batch
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="projector")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def wait(self) -> None:
        """Until the run task ends (tests: a crash injected by ``after_insert``)."""
        if self._task is not None:
            await self._task

    # -- the loop --------------------------------------------------------------------------
    async def run(self, until_seq: int | None = None) -> None:
        """Project until stopped (or, with ``until_seq``, until that sequence is acked)."""
        backoff_s = 0.2
        while not self._stopping.is_set():
            try:
                source = await self._source()
                try:
                    await self._consume(source, until_seq)
                    return
                finally:
                    with contextlib.suppress(Exception):
                        await source.close()
            except asyncio.CancelledError:
                raise
            except InjectedCrashError:
                raise
            except Exception as err:  # noqa: BLE001 (NATS or ClickHouse away: retry, never die)
                self.stats.last_error = f"{type(err).__name__}: {err}"
                log.warning("projector: %s; retrying in %.1f s", self.stats.last_error, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)

    async def run_until(self, last_seq: int) -> None:
        if last_seq > 0:
            await self.run(until_seq=last_seq)

    def consumer_config(self) -> ConsumerConfig:
        """The consumer this projector reads through. Explicit acks, one per message: an
        ack-all would also acknowledge messages another projector (or this one before a
        crash) fetched and never inserted, and those would never come back."""
        c = self.config
        return ConsumerConfig(
            name=c.durable,
            durable_name=c.durable,
            filter_subject=ALL_EVENTS,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=c.ack_wait_s,
            max_ack_pending=c.max_ack_pending,
            deliver_policy=DeliverPolicy.ALL
            if c.start_seq is None
            else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=c.start_seq,
            # an abandoned durable (its store deleted) goes after a week; a projector that
            # was away longer simply replays from the start (idempotent)
            inactive_threshold=7 * 24 * 3600.0 if c.durable else 30.0,
        )

    async def _source(self) -> _Source:
        """The consumer (created or updated through nats-py) and the path its messages take."""
        sub = await self.js.pull_subscribe(
            ALL_EVENTS, durable=self.config.durable, stream=STREAM, config=self.consumer_config()
        )
        if self.nats_url is None:
            return _NatsPySource(sub)
        try:
            client = await PullClient.connect(self.nats_url)
        except Exception:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            raise
        return _WireSource(client, sub)

    async def _consume(self, source: _Source, until_seq: int | None) -> None:
        """Fetch and fold batch N+1 while batch N is inserted (a pipeline of depth one: the
        GIL-bound fold overlaps the engine's insert). Batches are written and acked in order,
        and a batch is acked only once it is in the store.

        A batch is not in stream order: the consumer redelivers a message whose ack it does
        not have (ack_wait ran out, or the server died before it stored the ack) whenever it
        comes round, after newer messages. So a batch's position is its highest sequence,
        ``top``, never its last message's."""
        c = self.config
        batch: list[Fetched] = []
        top = 0
        first_at = 0.0
        handed = self.stats.last_seq
        loop = asyncio.get_running_loop()
        writing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                if until_seq is not None and not batch and handed >= until_seq:
                    if writing is not None:
                        await writing
                    return
                # an open batch waits no longer than its deadline: caught up, it closes at once
                wait_s = c.fetch_timeout_s
                if batch:
                    wait_s = max(0.0, min(wait_s, c.max_delay_s - (loop.time() - first_at)))
                msgs = await source.fetch(c.max_messages - len(batch), wait_s)
                if msgs and not batch:
                    first_at = loop.time()
                top = max(top, max((m.seq for m in msgs), default=0))
                batch.extend(msgs)
                if not batch:
                    continue
                full = len(batch) >= c.max_messages
                late = loop.time() - first_at >= c.max_delay_s
                reached = until_seq is not None and top >= until_seq
                if full or late or not msgs or reached:
                    rows = await loop.run_in_executor(None, self._fold, _messages(batch))
                    if writing is not None:
                        await writing
                    writing = loop.create_task(self._write(source, batch, rows, top))
                    handed = max(handed, top)
                    batch = []
                    top = 0
        except asyncio.CancelledError:
            if writing is not None:
                writing.cancel()  # stopping: an unacked batch simply comes again
            raise
        finally:
            if writing is not None:
                await _settle(writing)

    async def _write(self, source: _Source, batch: list[Fetched], rows: Rows, last: int) -> None:
        """Insert a folded batch, then ack its messages (and wait until the server has them);
        ``last``: the batch's highest stream sequence."""
        await self._insert(rows)
        if self.after_insert is not None:
            await self.after_insert(last)
        try:
            await source.ack(batch)
        except (TimeoutError, NatsError, PullError) as err:
            # the rows are in; an ack that did not arrive means a redelivery, which writes the
            # same rows again: harmless, so the projector goes on
            log.warning("projector: ack of stream sequence %d uncertain: %r", last, err)
        s = self.stats
        s.batches += 1
        s.messages += len(batch)
        s.rows += rows.count()
        s.poison += len(rows.tables["poison_events"])
        s.last_seq = max(s.last_seq, last)
        s.inserted_at = time.monotonic()

    async def _insert(self, rows: Rows) -> None:
        """Insert every table's rows, retrying (same rows, same keys) until it works."""
        backoff_s = 0.2
        pending: list[tuple[str, list[Row] | NativeBlock]] = [
            (t, r) for t, r in rows.tables.items() if r
        ]
        pending += [(block.table, block) for block in rows.native]
        while pending:
            table, table_rows = pending[0]
            try:
                if isinstance(table_rows, NativeBlock):
                    await self._insert_native(table_rows)
                else:
                    await self._insert_table(table, table_rows)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 (the store is away: keep the batch, retry)
                self.stats.insert_failures += 1
                self.stats.last_error = f"insert into {table}: {err}"
                log.warning("projector: %s; retrying in %.1f s", self.stats.last_error, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
                continue
            pending.pop(0)

    async def _insert_native(self, block: NativeBlock) -> None:
        """Insert a compiled fold's block; a block the store refuses as a statement (it is
        not there to retry: the store answered) is folded again in Python and inserted as
        rows, with the halving and poison rows of :meth:`_insert_table`."""
        try:
            await self.store.insert_native(
                block.table,
                COLUMNS[block.table],
                block.data,
                database=self.database,
                settings=NATIVE_INSERT_SETTINGS,
            )
        except StatementError as err:
            log.warning(
                "projector: a %s block was refused (%s): folded in Python", block.table, err
            )
            rows = fold_batch(list(block.messages)).tables[block.table]
            if rows:
                await self._insert_table(block.table, rows)

    async def _insert_table(self, table: str, rows: list[Row]) -> None:
        """Insert; rows the client cannot encode (a value the fold let through that does not
        fit its column) are found by halving and recorded as poison, so they cannot block
        the projector. Errors of the store itself propagate (retried by the caller)."""
        try:
            await self.store.insert(table, rows, COLUMNS[table], database=self.database)
        except _ROW_ERRORS as err:
            if len(rows) == 1:
                self.stats.poison += 1
                log.warning("projector: a %s row cannot be inserted (%s): poison", table, err)
                await self.store.insert(
                    "poison_events",
                    [_poison_row(table, rows[0], err)],
                    COLUMNS["poison_events"],
                    database=self.database,
                )
                return
            half = len(rows) // 2
            await self._insert_table(table, rows[:half])
            await self._insert_table(table, rows[half:])


class InjectedCrashError(Exception):
    """Raised by a test hook to simulate a crash between insert and ack: ends the run."""


class _Source(Protocol):
    async def fetch(self, count: int, timeout_s: float) -> list[Fetched]: ...
    async def ack(self, batch: list[Fetched]) -> None: ...
    async def close(self) -> None: ...


class _NatsPySource:
    """nats-py's fetch and acks (TLS, credentials: any URL nats-py takes)."""

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self.sub = sub
        self.msgs: dict[int, Msg] = {}

    async def fetch(self, count: int, timeout_s: float) -> list[Fetched]:
        try:
            msgs = await self.sub.fetch(count, timeout=max(timeout_s, 0.01))
        except TimeoutError:  # nats-py raises its own and asyncio's: nothing to fetch yet
            return []
        out = []
        for m in msgs:
            seq, stored_ms = _position(m)
            self.msgs[seq] = m
            out.append(Fetched(seq, stored_ms, m.subject, m.data, m.reply or ""))
        return out

    async def ack(self, batch: list[Fetched]) -> None:
        """Every message acked; the last one waits for the server's confirmation, which
        follows the others on the same connection."""
        msgs = [self.msgs.pop(f.seq) for f in batch if f.seq in self.msgs]
        if not msgs:
            return
        for msg in msgs[:-1]:
            await msg.ack()
        await msgs[-1].ack_sync(timeout=ACK_TIMEOUT_S)

    async def close(self) -> None:
        await self.sub.unsubscribe()


class _WireSource:
    """The lean data path (:mod:`streams.projections.pull`) on the consumer ``sub`` made."""

    def __init__(self, client: PullClient, sub: JetStreamContext.PullSubscription) -> None:
        self.client = client
        self.sub = sub
        self.stream = STREAM
        self.consumer = str(sub._consumer)

    async def fetch(self, count: int, timeout_s: float) -> list[Fetched]:
        return await self.client.fetch(self.stream, self.consumer, count, timeout_s)

    async def ack(self, batch: list[Fetched]) -> None:
        await self.client.ack(batch, ACK_TIMEOUT_S)

    async def close(self) -> None:
        await self.client.close()
        await self.sub.unsubscribe()


async def _settle(writing: asyncio.Task[None]) -> None:
    """Whatever ended the loop (a fetch error, NATS away), the batch in flight finishes its
    insert and ack and its outcome is retrieved: a crash there is the crash."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await writing
    if not writing.cancelled() and isinstance(writing.exception(), InjectedCrashError):
        raise InjectedCrashError("crashed between insert and ack")


_ROW_ERRORS = (TypeError, ValueError, OverflowError, struct.error, DataError)
"""Client-side encoding errors: deterministic for a row, unlike a store that is away."""


def _poison_row(table: str, row: Row, err: Exception) -> Row:
    names = COLUMNS[table]
    seq = int(row[names.index("stream_seq")]) if "stream_seq" in names else 0
    idx = int(row[names.index("idx")]) if "idx" in names else WHOLE_MESSAGE
    error = f"insert into {table}: {type(err).__name__}: {err}"[:2000]
    return [seq, idx, "", error, repr(row)[:65536], int(time.time() * 1000)]


def _messages(batch: list[Fetched]) -> list[Message]:
    """(stream sequence, subject, data, stored ms): the stored time is the message's own, so a
    replay writes the very same poison rows."""
    return [(m.seq, m.subject, m.data, m.stored_ms) for m in batch]


def _position(msg: Msg) -> tuple[int, int]:
    """(stream sequence, stored ms) from the ack subject ``$JS.ACK.<stream>.<consumer>.<n>.
    <stream seq>.<consumer seq>.<ns>.<pending>`` (v1) or its v2 form with domain and account:
    the same as ``msg.metadata``, without building it for every message."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7]) // 1_000_000
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[9]) // 1_000_000
    meta = msg.metadata
    return int(meta.sequence.stream), int(meta.timestamp.timestamp() * 1000)
