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
import itertools
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from csms.domain.events import FrameEvent
from streams import envelope, nats_wire
from streams.subjects import subject

log = logging.getLogger(__name__)

OnStored = Callable[[int], None]


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


class _Entry:
    __slots__ = ("attempts", "data", "on_stored", "timer")

    def __init__(self, data: bytes, on_stored: OnStored) -> None:
        self.data = data
        self.on_stored = on_stored
        self.timer: asyncio.TimerHandle | None = None
        self.attempts = 0


class _Connection(asyncio.Protocol):
    """One TCP connection to a NATS server; reports to its writer."""

    def __init__(self, writer: EventWriter, options: dict[str, object], subscribe: bytes) -> None:
        self._writer = writer
        self._options = options
        self._subscribe = subscribe
        self._parser = nats_wire.Parser()
        self._out = bytearray()
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
        try:
            ops = self._parser.feed(data)
        except nats_wire.ProtocolError as err:
            self._fail(err)
            return
        for op in ops:
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
        self._out += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and not self.transport.is_closing() and self._out:
            self.transport.write(bytes(self._out))
        self._out.clear()


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
        self._tokens = itertools.count(1)
        self._entries: dict[str, _Entry] = {}
        self._waiting: list[str] = []
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
        token = str(next(self._tokens))
        reply = f"{self._prefix}.{token}"
        entry = _Entry(
            nats_wire.hpub_command(subject(first.station_id), reply, headers, data), on_stored
        )
        self._entries[token] = entry
        self._send(token, entry)

    # -- sending, acks and retries -----------------------------------------------------
    def _send(self, token: str, entry: _Entry) -> None:
        conn = self._conn
        if conn is None:
            self._waiting.append(token)
            return
        entry.attempts += 1
        conn.write(entry.data)
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(self._ack_timeout_s, self._expired, token)

    def _expired(self, token: str) -> None:
        entry = self._entries.get(token)
        if entry is not None:
            entry.timer = None
            self._failed(token, entry, "no PubAck in time")

    def _failed(self, token: str, entry: _Entry, why: str) -> None:
        self.failures += 1
        self.healthy = False
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        delay = min(0.05 * 2 ** min(entry.attempts, 8), self._max_retry_delay_s)
        log.warning("event message %s not stored (%s); retrying in %.2fs", token, why, delay)
        asyncio.get_running_loop().call_later(delay, self._resend, token)

    def _resend(self, token: str) -> None:
        entry = self._entries.get(token)
        if entry is not None and entry.timer is None:
            self._send(token, entry)

    def _on_message(self, msg: nats_wire.Message) -> None:
        token = msg.subject.rpartition(".")[2]
        entry = self._entries.get(token)
        if entry is None or entry.timer is None:
            return  # late ack of an attempt already retried or resolved: the next ack decides
        if msg.headers:
            status = nats_wire.header_status(msg.headers)
            if status is not None and status != "100":
                self._failed(token, entry, f"status {status}: no stream for the subject?")
                return
        try:
            ack = _ack_decoder.decode(msg.payload)
        except msgspec.DecodeError as err:
            self._failed(token, entry, f"unreadable ack: {err}")
            return
        if ack.error is not None:
            self._failed(token, entry, str(ack.error))
            return
        entry.timer.cancel()
        del self._entries[token]
        self.published += 1
        self.healthy = True
        entry.on_stored(ack.seq)

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
        pending = sorted(set(self._waiting) | set(self._entries), key=int)
        self._waiting.clear()
        for token in pending:
            entry = self._entries.get(token)
            if entry is not None:
                if entry.timer is not None:
                    entry.timer.cancel()
                    entry.timer = None
                self._send(token, entry)
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
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn._flush()
            conn.transport.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for entry in self._entries.values():
            if entry.timer is not None:
                entry.timer.cancel()

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
