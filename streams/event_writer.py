"""EventWriter: the gateway's event sink on a lean NATS connection (implements
``csms.ports.EventSink``).

Why not nats-py for this one path: every answered CALL costs one JetStream write, and in nats-py
each write is a coroutine (publish), a header dict rendered per call, a ``Msg`` object, a queue
hop and a subscription task per PubAck. Profiled under load (gateway issue notes) that was about
half of the gateway's CPU. This connection does only what the write path needs: HPUB with a
``Nats-Msg-Id`` and a reply subject, one SUB for all PubAcks, writes coalesced per loop
iteration, and a plain callback per stored message (``submit``), so the session can answer from
the PubAck without a task switch. nats-py stays for everything else (provisioning, KV,
consumers) and is the sink when a URL needs what this connection does not speak (TLS, creds).

Guarantees, the same as before: a message is reported stored only on a PubAck from JetStream;
until then it is retried (after an ack timeout, an error ack, or a lost connection) with the
same ``Nats-Msg-Id``, forever, so the stream's duplicate window makes retries idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from csms.domain.events import FrameEvent, Origin
from streams import envelope, nats_wire
from streams.subjects import subject

log = logging.getLogger(__name__)

OnStored = Callable[[int], None]

SWEEP_S = 0.25
"""How often overdue PubAcks are looked for (an ack timeout is honoured within this)."""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


class UnsupportedServerError(Exception):
    """The URL or server needs something this connection does not speak (TLS, creds)."""


def supports(url: str) -> bool:
    """True when every server of ``url`` (comma-separated) is plain ``nats://`` or bare
    host:port, which is what this connection speaks."""
    for part in url.split(","):
        scheme = urlsplit(part.strip() if "://" in part else f"nats://{part.strip()}").scheme
        if scheme != "nats":
            return False
    return True


class _Entry(msgspec.Struct, gc=False):
    """One message until its PubAck: a C-built struct (one is made per answered CALL), not
    tracked by the cyclic GC; it lives in the writer's table until acknowledged and is freed by
    reference counting when it leaves it."""

    data: bytes
    on_stored: OnStored
    deadline: float = 0.0
    """Loop time by which the PubAck of the attempt in flight is due; 0: none in flight
    (waiting to be sent, or to be retried)."""
    attempts: int = 0


class _Connection(asyncio.Protocol):
    """One TCP connection to a NATS server; reports to its writer."""

    def __init__(self, writer: EventWriter, options: dict[str, object], subscribe: bytes) -> None:
        self._writer = writer
        self._options = options
        self._subscribe = subscribe
        self._tail = b""
        """The start of an operation whose end has not arrived yet."""
        self._inbox = writer._prefix.encode()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.max_payload = 1024 * 1024
        self.pings_outstanding = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """PubAcks are read in Rust, in runs (``scan_acks``); anything else, one operation at a
        time, by the general parser."""
        if self._tail:
            data = self._tail + data
            self._tail = b""
        acked = self._writer._acked_many
        pos = 0
        size = len(data)
        while pos < size:
            pos, acks = nats_wire.scan_acks(data, pos, self._inbox)
            if acks:
                acked(acks)
            if pos >= size:
                break
            try:
                parsed = nats_wire.parse_one(data, pos)
            except nats_wire.ProtocolError as err:
                self._fail(err)
                return
            if parsed is None:
                self._tail = data[pos:]
                break
            op, pos = parsed
            if op is not None:
                self._operation(op)

    def _operation(self, op: nats_wire.Op) -> None:
        if isinstance(op, nats_wire.Message):
            self._writer._on_message(op)
        elif op is nats_wire.PING:
            self.write(b"PONG\r\n")
        elif op is nats_wire.PONG:
            self.pings_outstanding = 0
            if not self.ready.done():
                self.ready.set_result(None)
        elif isinstance(op, nats_wire.Info):
            self._info(op.data)
        elif isinstance(op, nats_wire.ServerError):
            log.warning("NATS error: %s", op.text)
            if not self.ready.done():
                self._fail(ConnectionError(f"NATS refused the connection: {op.text}"))

    def _info(self, info: dict[str, object]) -> None:
        if self.ready.done():
            return  # cluster updates: the URL list given to us is what we use
        if info.get("tls_required"):
            self._fail(UnsupportedServerError("server requires TLS"))
            return
        payload = info.get("max_payload")
        if isinstance(payload, int):
            self.max_payload = payload
        self.write(nats_wire.connect_command(self._options) + self._subscribe + b"PING\r\n")

    def _fail(self, err: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(err)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        """Buffer; everything written in one loop iteration leaves in one send."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing() and out:
            self.transport.writelines(out)  # one vectored send, no copy into a buffer


class EventWriter:
    """Durable event sink; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        ack_timeout_s: float = 5.0,
        max_retry_delay_s: float = 2.0,
        ping_interval_s: float = 10.0,
        name: str = "csms-events",
    ) -> None:
        self._servers = [_server(part) for part in url.split(",")]
        self._ack_timeout_s = ack_timeout_s
        self._max_retry_delay_s = max_retry_delay_s
        self._ping_interval_s = ping_interval_s
        self._name = name
        self._prefix = f"_INBOX.{secrets.token_hex(11)}"
        self._token = 0
        """The highest reply token handed out so far."""
        self._free: list[int] = []
        """Reply tokens that may be used again (see ``_next_token``)."""
        self._entries: dict[int, _Entry] = {}
        """Unacknowledged messages by token (the last part of their reply subject), in
        submission order."""
        self._waiting: list[int] = []
        self._clock = 0.0
        """Loop time, refreshed by the sweeper: deadlines need no clock read per message."""
        self._sweeper: asyncio.TimerHandle | None = None
        self._conn: _Connection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pinger: asyncio.TimerHandle | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self.published = 0
        self.failures = 0
        self.healthy = False

    # -- the EventSink port ------------------------------------------------------------
    async def publish(self, *events: FrameEvent) -> int:
        """Return the stream sequence once JetStream has stored ``events`` (one or more of one
        station, in order, as one message; retrying forever)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def stored(seq: int) -> None:
            if not future.done():
                future.set_result(seq)

        self.submit(events, stored)
        return await future

    def submit(self, events: Sequence[FrameEvent], on_stored: OnStored) -> None:
        """Store ``events`` as one message; call ``on_stored(stream_seq)`` once JetStream has
        acknowledged it (never before; retried until then)."""
        first = events[0]
        data = envelope.encode_many(events)
        headers = nats_wire.msg_id_headers(first.event_id)
        token = self._next_token()
        reply = f"{self._prefix}.{token}"
        entry = _Entry(
            nats_wire.hpub_command(subject(first.station_id), reply, headers, data), on_stored
        )
        self._entries[token] = entry
        self._send(token, entry)

    def submit_exchange(
        self,
        origin: Origin,
        seq: int,
        unique_id: str,
        action: str,
        call: bytes,
        call_at_ns: int,
        answer_type: int,
        answer: bytes,
        answer_at_ns: int,
        on_stored: OnStored,
    ) -> None:
        """``submit`` of a CALL and its answer, the message built in one Rust call."""
        token = self._next_token()
        data = nats_wire.exchange_message(
            subject(origin.station_id),
            self._prefix,
            token,
            origin.node_id,
            origin.session_id,
            origin.station_id,
            origin.ocpp_version,
            unique_id,
            action,
            seq,
            call,
            call_at_ns,
            answer_type,
            answer,
            answer_at_ns,
        )
        conn = self._conn
        if conn is None:
            self._entries[token] = _Entry(data, on_stored)
            self._waiting.append(token)
            return
        self._entries[token] = _Entry(data, on_stored, self._clock + self._ack_timeout_s, 1)
        conn.write(data)

    # -- sending, acks and retries -----------------------------------------------------
    def _next_token(self) -> int:
        """A reply token: one freed by an earlier message, else a new one. Reusing tokens keeps
        the set of reply subjects small, so nats-server's subject caches hit instead of
        inserting and evicting a subject per message (bench.load.nats_cost: about 9 % of its
        CPU per message). Safe because a token is freed only by the PubAck of a message sent
        exactly once (``_acked_many``): nothing else can still arrive on it. A token whose message
        was sent twice (an ack timeout, an error ack, a reconnect) may see a second PubAck
        later and is never used again."""
        if self._free:
            return self._free.pop()
        self._token += 1
        return self._token

    def _send(self, token: int, entry: _Entry) -> None:
        conn = self._conn
        if conn is None:
            self._waiting.append(token)
            return
        entry.attempts += 1
        conn.write(entry.data)
        entry.deadline = self._clock + self._ack_timeout_s

    def _sweep(self) -> None:
        """Every SWEEP_S: messages whose PubAck is overdue are retried (one timer for all
        messages instead of one per message)."""
        now = self._clock = asyncio.get_running_loop().time()
        overdue = [t for t, e in self._entries.items() if 0.0 < e.deadline <= now]
        for token in overdue:
            self._failed(token, self._entries[token], "no PubAck in time")
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    def _failed(self, token: int, entry: _Entry, why: str) -> None:
        self.failures += 1
        self.healthy = False
        entry.deadline = 0.0
        delay = min(0.05 * 2 ** min(entry.attempts, 8), self._max_retry_delay_s)
        log.warning("event message %s not stored (%s); retrying in %.2fs", token, why, delay)
        asyncio.get_running_loop().call_later(delay, self._resend, token)

    def _resend(self, token: int) -> None:
        entry = self._entries.get(token)
        if entry is not None and entry.deadline == 0.0:
            self._send(token, entry)

    def _acked(self, token: int, seq: int) -> None:
        """A successful PubAck read by the general parser (``_on_message``)."""
        self._acked_many([(token, seq)])

    def _acked_many(self, acks: list[tuple[int, int]]) -> None:
        """Successful PubAcks (``(token, stream seq)``, a run as ``scan_acks`` reads them: one
        call per run). A late one, for an attempt already given up, still means stored: the
        retry it would have caused is not needed."""
        entries, free = self._entries, self._free
        stored = 0
        for token, seq in acks:
            entry = entries.pop(token, None)
            if entry is None:
                continue  # a second ack of a message already reported stored
            if entry.attempts == 1:
                free.append(token)  # its one attempt is answered: nothing more can come
            stored += 1
            entry.on_stored(seq)
        if stored:
            self.published += stored
            self.healthy = True

    def _on_message(self, msg: nats_wire.Message) -> None:
        """Any other message on the inbox: an error PubAck, a status (503: no stream), or an
        ack shape ``scan_acks`` does not read."""
        text = msg.subject.rpartition(".")[2]
        token = int(text) if text.isascii() and text.isdigit() else -1
        entry = self._entries.get(token)
        if entry is None:
            return  # not ours, or a message already reported stored
        why = None
        status = nats_wire.header_status(msg.headers) if msg.headers else None
        if status is not None and status != "100":
            why = f"status {status}: no stream for the subject?"
        else:
            try:
                ack = _ack_decoder.decode(msg.payload)
            except msgspec.DecodeError as err:
                why = f"unreadable ack: {err}"
            else:
                if ack.error is not None:
                    why = str(ack.error)
                else:
                    self._acked(token, ack.seq)
                    return
        if entry.deadline != 0.0:  # else already waiting to retry: that attempt decides
            self._failed(token, entry, why)

    # -- connection lifecycle ------------------------------------------------------------
    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect (raises UnsupportedServerError for a server needing TLS) and keep
        reconnecting in the background."""
        conn = await asyncio.wait_for(self._first_connection(), timeout_s)
        self._attach(conn)
        self._runner = asyncio.get_running_loop().create_task(self._run(conn))

    async def _first_connection(self) -> _Connection:
        """The first server of the list that answers (a cluster may have a node down)."""
        index = 0
        while True:
            try:
                return await self._connect(index)
            except (OSError, ConnectionError) as err:
                index += 1
                if index % len(self._servers) == 0:
                    log.warning("no NATS server of %d answered (%s); retrying", index, err)
                    await asyncio.sleep(0.2)

    async def _connect(self, index: int) -> _Connection:
        host, port, auth = self._servers[index % len(self._servers)]
        options: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "name": self._name,
            "lang": "python-csms",
            "version": "1",
            **auth,
        }
        subscribe = nats_wire.sub_command(f"{self._prefix}.*", 1)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Connection(self, options, subscribe), host, port
        )
        try:
            await conn.ready
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return conn

    def _attach(self, conn: _Connection) -> None:
        """A ready connection: resend everything not acknowledged yet, in submission order."""
        self._conn = conn
        self.healthy = True
        pending = list(self._entries)  # every unacknowledged message, waiting ones included
        self._waiting.clear()
        self._clock = asyncio.get_running_loop().time()
        for token in pending:
            entry = self._entries.get(token)
            if entry is not None:
                self._send(token, entry)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
        self._schedule_ping()

    def _schedule_ping(self) -> None:
        self._pinger = asyncio.get_running_loop().call_later(self._ping_interval_s, self._ping)

    def _ping(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if conn.pings_outstanding >= 2:
            log.warning("NATS did not answer two pings; reconnecting")
            if conn.transport is not None:
                conn.transport.abort()
            return
        conn.pings_outstanding += 1
        conn.write(b"PING\r\n")
        self._schedule_ping()

    async def _run(self, conn: _Connection) -> None:
        index = 0
        while True:
            await conn.closed
            self._conn = None
            self.healthy = False
            if self._pinger is not None:
                self._pinger.cancel()
            if self._closing:
                return
            log.warning("event writer lost its NATS connection; reconnecting")
            delay = 0.05
            while True:
                index += 1
                try:
                    conn = await asyncio.wait_for(self._connect(index), 5.0)
                    break
                except (OSError, TimeoutError, ConnectionError, UnsupportedServerError) as err:
                    log.warning("NATS connect failed (%s); retrying in %.2fs", err, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay_s)
            self._attach(conn)
            log.info("event writer reconnected to NATS")

    async def close(self) -> None:
        """Stop; unacknowledged messages are abandoned (call after the sessions drained)."""
        self._closing = True
        if self._pinger is not None:
            self._pinger.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn._flush()
            conn.transport.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    @property
    def in_flight(self) -> int:
        return len(self._entries)


def _server(text: str) -> tuple[str, int, dict[str, object]]:
    """host, port and CONNECT auth fields of one ``nats://[user:pass@|token@]host[:port]``."""
    text = text.strip()
    parts = urlsplit(text if "://" in text else f"nats://{text}")
    if parts.scheme != "nats":
        raise UnsupportedServerError(f"{parts.scheme}:// (the event writer speaks nats://)")
    auth: dict[str, object] = {}
    if parts.username and parts.password is not None:
        auth = {"user": unquote(parts.username), "pass": unquote(parts.password)}
    elif parts.username:
        auth = {"auth_token": unquote(parts.username)}
    return parts.hostname or "127.0.0.1", parts.port or 4222, auth
