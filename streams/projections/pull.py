"""A lean JetStream pull-consumer data path for the projector: fetch batches, ack them.

Why: nats-py builds a ``Msg`` object, a future and a queue entry per message, and its ``fetch``
cost about 100 µs a message on the benchmark machine, which capped the projector near 10,000
stream messages/s (100,000 meter rows/s) before any folding. Here one socket read is split into
messages with a few ``bytes`` operations, and a batch's acks are one write.

Scope, deliberately small: plain ``nats://`` (user/password or token in the URL), no TLS, no
reconnect (a dropped connection raises; the projector's loop reconnects). The consumer itself is
created and configured through nats-py (``Projector._source``); this only speaks
``$JS.API.CONSUMER.MSG.NEXT`` and the acks. :func:`usable` says whether a URL qualifies; the
projector falls back to nats-py's ``fetch`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlparse

from streams.nats_servers import servers

CRLF: Final = b"\r\n"
MAX_MESSAGE: Final = 64 * 1024 * 1024
READ_BYTES: Final = 1 << 20
NO_WAIT_S: Final = 2.0
"""Bound on waiting for the answer to a no_wait request (it normally comes at once)."""


class PullError(ConnectionError):
    """The server said no, or the connection is gone: the projector reconnects."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One stream message: its position (from the ack subject), subject, data, ack subject."""

    seq: int
    stored_ms: int
    subject: str
    data: bytes
    reply: str


def usable(url: str) -> bool:
    """Plain nats:// URLs only (TLS and credentials files go through nats-py)."""
    return all(urlparse(u).scheme in ("nats", "") for u in servers(url))


def position(reply: str) -> tuple[int, int]:
    """(stream sequence, stored ms) from ``$JS.ACK.<stream>.<consumer>.<n>.<stream seq>.
    <consumer seq>.<ns>.<pending>`` (v1) or its v2 form with domain and account hash."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7]) // 1_000_000
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[9]) // 1_000_000
    raise PullError(f"not a JetStream ack subject: {reply[:80]!r}")


class PullClient:
    """One connection; :meth:`fetch` and :meth:`ack` take turns (a lock): messages read while
    acking wait in ``_ready`` for the next fetch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._inbox = f"_INBOX.{secrets.token_hex(8)}"
        self._requests = 0
        self._ready: list[Fetched] = []
        self._ended: set[str] = set()
        self._pongs = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, name: str = "csms-projector-pull") -> PullClient:
        last: Exception | None = None
        for server in servers(url):
            parsed = urlparse(server if "://" in server else f"nats://{server}")
            try:
                reader, writer = await asyncio.open_connection(
                    parsed.hostname or "127.0.0.1", parsed.port or 4222, limit=MAX_MESSAGE
                )
            except OSError as err:
                last = err
                continue
            client = cls(reader, writer)
            await client._handshake(parsed.username, parsed.password, name)
            return client
        raise PullError(f"no NATS server answered at {url}: {last}")

    async def _handshake(self, user: str | None, password: str | None, name: str) -> None:
        line = await self._reader.readline()
        if not line.startswith(b"INFO "):
            raise PullError(f"not a NATS server: {line[:40]!r}")
        info = json.loads(line[5:])
        if info.get("tls_required"):
            raise PullError("the server requires TLS: use nats-py")
        options: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "lang": "python-csms",
            "version": "1",
            "name": name,
        }
        if user and password is None:
            options["auth_token"] = unquote(user)
        elif user:
            options["user"], options["pass"] = unquote(user), unquote(password or "")
        connect = b"CONNECT " + json.dumps(options).encode() + CRLF
        self._writer.write(connect + f"SUB {self._inbox}.* 1\r\nPING\r\n".encode())
        await self._writer.drain()
        while True:
            line = await self._reader.readline()
            if not line:
                raise PullError("connection closed during the handshake")
            if line.startswith(b"PONG"):
                return
            if line.startswith(b"-ERR"):
                raise PullError(line.decode(errors="replace").strip())

    async def fetch(
        self, stream: str, consumer: str, batch: int, timeout_s: float
    ) -> list[Fetched]:
        """Up to ``batch`` messages: what the server has now, else the first to arrive within
        ``timeout_s`` (and whatever came with it); [] when nothing came."""
        async with self._lock:
            self._parse()
            if len(self._ready) < batch:
                # what is there now: the server answers a no_wait request at once
                done = self._request(stream, consumer, batch - len(self._ready), None)
                # the server answers a no_wait request at once (messages, then a 404 status)
                await self._read_until(lambda: done() or len(self._ready) >= batch, NO_WAIT_S)
            if not self._ready and timeout_s > 0:
                # nothing: a lingering request; return with the first message(s)
                done = self._request(stream, consumer, batch, timeout_s)
                await self._read_until(lambda: done() or bool(self._ready), timeout_s + 1.0)
            out, self._ready = self._ready[:batch], self._ready[batch:]
            return out

    def _request(
        self, stream: str, consumer: str, batch: int, expires_s: float | None
    ) -> Callable[[], bool]:
        """Send a pull request; the callable says whether its end (a status) has come."""
        self._ended.clear()  # one request is awaited at a time: older statuses are moot
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        body: dict[str, object] = {"batch": batch}
        if expires_s is None:
            body["no_wait"] = True
        else:
            body["expires"] = int(expires_s * 1e9)
        request = json.dumps(body).encode()
        api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._writer.write(f"PUB {api} {reply} {len(request)}\r\n".encode() + request + CRLF)
        return lambda: reply in self._ended

    async def _read_until(self, done: Callable[[], bool], timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done():
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                chunk = await asyncio.wait_for(self._reader.read(READ_BYTES), left)
            except TimeoutError:
                return
            if not chunk:
                raise PullError("NATS connection closed")
            self._buffer += chunk
            self._parse()

    def _parse(self) -> None:
        """Take the complete operations from the buffer: messages to ``_ready``, the status
        that ends a pull request (404 no messages, 408 expired, 409 …) to ``_ended``."""
        buf = self._buffer
        pos = 0
        while True:
            end = buf.find(CRLF, pos)
            if end < 0:
                break
            head = bytes(buf[pos:end])
            if head.startswith((b"MSG ", b"HMSG ")):
                parts = head.split(b" ")
                hmsg = parts[0] == b"HMSG"
                total = int(parts[-1])
                if not 0 <= total <= MAX_MESSAGE:
                    raise PullError(f"message length out of bounds: {head[:80]!r}")
                start = end + 2
                if len(buf) < start + total + 2:
                    break
                header_len = int(parts[-2]) if hmsg else 0
                if len(parts) == (6 if hmsg else 5):
                    ack = parts[3].decode()
                    seq, stored_ms = position(ack)
                    data = bytes(buf[start + header_len : start + total])
                    self._ready.append(Fetched(seq, stored_ms, parts[1].decode(), data, ack))
                elif hmsg:
                    status = bytes(buf[start : start + header_len]).split(b" ", 2)
                    if len(status) > 1 and not status[1].startswith(b"100"):
                        self._ended.add(parts[1].decode())  # not a heartbeat
                pos = start + total + 2
                continue
            pos = end + 2
            if head.startswith(b"PING"):
                self._writer.write(b"PONG\r\n")
            elif head.startswith(b"PONG"):
                self._pongs += 1
            elif head.startswith(b"-ERR"):
                raise PullError(head.decode(errors="replace"))
        del buf[:pos]

    async def ack(self, messages: list[Fetched], timeout_s: float = 10.0) -> None:
        """Ack every message (one write), then a PING: its PONG says the server has read the
        acks. A lost PONG is a :class:`PullError`; the rows are in either way."""
        async with self._lock:
            want = self._pongs + 1
            self._writer.write(b"".join(f"PUB {m.reply} 0\r\n\r\n".encode() for m in messages))
            self._writer.write(b"PING\r\n")
            await self._read_until(lambda: self._pongs >= want, timeout_s)
            if self._pongs < want:
                raise PullError("no PONG after the acks")

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
