"""The store of a projector process, read from another process over a Unix socket.

chDB hosts one engine per process and its directory can be open in one process only. When the
projector runs as a child of ``csms serve`` (so the gateway's event loop never waits for a fold
or an insert), the child owns the engine and serves reads on a Unix socket; the parent's API
reads through :class:`RemoteStore`, which is a :class:`~streams.store.Store` as far as the
queries and reports are concerned.

Frames: a 4-byte big-endian length, then msgpack. Request ``[op, args]``; answer
``["ok", value]`` or ``["error", kind, message]`` (kind ``statement`` → StatementError, else
StoreError). Values go through msgpack (datetimes stay aware UTC datetimes; types msgpack does
not know, e.g. UUID or Decimal, arrive as strings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from streams.store import StatementError, Store, StoreError, StoreUrl

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def _fallback(value: Any) -> Any:
    return str(value)


_encoder = msgspec.msgpack.Encoder(enc_hook=_fallback)
_decoder = msgspec.msgpack.Decoder()


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    head = await reader.readexactly(_LENGTH.size)
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise StoreError(f"frame of {size} bytes")
    return _decoder.decode(await reader.readexactly(size))


def _frame(value: Any) -> bytes:
    body = _encoder.encode(value)
    return _LENGTH.pack(len(body)) + body


class StoreServer:
    """The serving side; :meth:`close` also ends the open connections."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                op, args = await _read_frame(reader)
                writer.write(_frame(await _answer(self.store, op, args)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()


async def serve_store(store: Store, path: str) -> StoreServer:
    """Answer reads (and statements) for ``store`` on the Unix socket ``path``."""
    served = StoreServer(store)
    served.server = await asyncio.start_unix_server(served._handle, path=path)
    return served


async def _answer(store: Store, op: str, args: list[Any]) -> list[Any]:
    try:
        if op == "query":
            return ["ok", await store.query(*args)]
        if op == "query_table":
            names, rows = await store.query_table(*args)
            return ["ok", [names, rows]]
        if op == "read_only_query":
            names, rows = await store.read_only_query(*args)
            return ["ok", [names, rows]]
        if op == "command":
            await store.command(*args)
            return ["ok", None]
        if op == "insert":
            await store.insert(*args)
            return ["ok", None]
        return ["error", "statement", f"unknown operation {op!r}"]
    except StatementError as err:
        return ["error", "statement", str(err)]
    except Exception as err:  # noqa: BLE001 (any failure is the caller's answer, not ours)
        return ["error", "store", f"{type(err).__name__}: {err}"]


class RemoteStore(Store):
    """A :class:`Store` whose engine lives in another process (see the module docstring)."""

    accepts_native = False

    def __init__(
        self,
        path: str,
        target: StoreUrl,
        *,
        ready: asyncio.Event | None = None,
        child: asyncio.subprocess.Process | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        """``ready``: set once the serving process answers (its first read waits for it, up
        to ``ready_timeout_s``); ``child``: that process, to tell "exited" from "busy"."""
        self.path = path
        self.target = target
        self._ready = ready
        self._child = child
        self._ready_timeout_s = ready_timeout_s
        self._closed = False
        self._lock = asyncio.Lock()
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._ready is not None and not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self._ready_timeout_s)
        if self._child is not None and self._child.returncode is not None:
            raise StoreError(f"the projector process exited ({self._child.returncode})")
        if self._conn is None:
            try:
                self._conn = await asyncio.open_unix_connection(self.path, limit=MAX_FRAME)
            except OSError as err:
                raise StoreError(f"the projector process does not answer: {err}") from err
        return self._conn

    async def _call(self, op: str, *args: Any) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        async with self._lock:
            reader, writer = await self._connection()
            try:
                writer.write(_frame([op, list(args)]))
                await writer.drain()
                answer = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as err:
                self._conn = None
                writer.close()
                raise StoreError(f"the projector process went away: {err}") from err
        if answer[0] == "ok":
            return answer[1]
        if answer[1] == "statement":
            raise StatementError(answer[2])
        raise StoreError(answer[2])

    async def command(
        self, sql: str, parameters: Mapping[str, Any] | None = None, database: str | None = None
    ) -> None:
        await self._call("command", sql, dict(parameters or {}), database)

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        database: str | None = None,
    ) -> None:
        if rows:
            await self._call("insert", table, list(rows), list(column_names), database)

    async def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._call(
            "query", sql, dict(parameters or {}), dict(settings or {})
        )
        return rows

    async def query_table(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        names, rows = await self._call(
            "query_table", sql, dict(parameters or {}), dict(settings or {})
        )
        return list(names), [tuple(r) for r in rows]

    async def read_only_query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        names, rows = await self._call("read_only_query", sql, dict(parameters or {}))
        return list(names), [tuple(r) for r in rows]

    async def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            _, writer = self._conn
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._conn = None
