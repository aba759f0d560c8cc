"""1.6 transaction ids from a JetStream key-value bucket (implements csms.ports.TransactionIds).

Shared by every gateway process and kept across restarts. ``allocate(key)``:
1. the key already has an id → that id (a retried StartTransaction gets the same answer);
2. otherwise take the next number of this process's block, then ``create`` the key; if
   another process created it first, return theirs (the number we took is simply skipped,
   never reused).

Blocks: the ``next`` counter holds the last number handed out to any process; a process
reserves ``BLOCK`` numbers with one compare-and-set and hands them out locally. One counter
update per StartTransaction made a burst of 1,000 starts contend on one key (each round of
compare-and-set lets one through: about 35 answers/s, timeouts; issue 6's burst scenario).
Ids stay unique across processes and restarts; a restart skips the rest of its block.

``owner.<id>`` → the station the id was allocated for: ``started_by`` tells a StopTransaction
for an id we never handed out (M31, flagged in its event). Ids allocated before these entries
existed read as unknown.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

BUCKET = "CSMS_TX16"
_COUNTER = "next"
BLOCK = 100


def _owner_key(transaction_id: int) -> str:
    return f"owner.{transaction_id}"


class KvTransactionIds:
    def __init__(self, kv: KeyValue, block: int = BLOCK) -> None:
        self._kv = kv
        self._block = block
        self._lock = asyncio.Lock()
        self._next = 0
        self._end = 0
        """This process's unused numbers: [_next, _end)."""

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> KvTransactionIds:
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas
                )
            )
        return cls(kv)

    async def allocate(self, key: str, station_id: str) -> int:
        existing = await self._lookup(key)
        if existing is not None:
            return existing
        candidate = await self._next_number()
        # Who the id is for, written before the id can be answered: a StopTransaction for an
        # id without it was never started here (M31). A number skipped after a lost race keeps
        # its entry; no StopTransaction ever names it.
        await self._kv.put(_owner_key(candidate), station_id.encode())
        try:
            await self._kv.create(key, str(candidate).encode())
        except KeyWrongLastSequenceError:
            raced = await self._lookup(key)
            if raced is None:
                raise
            return raced
        return candidate

    async def started_by(self, transaction_id: int) -> str | None:
        if transaction_id <= 0:
            return None
        try:
            entry = await self._kv.get(_owner_key(transaction_id))
        except KeyNotFoundError:
            return None
        return (entry.value or b"").decode()

    async def _lookup(self, key: str) -> int | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return int(entry.value or b"0")

    async def _next_number(self) -> int:
        async with self._lock:
            if self._next >= self._end:
                self._next = await self._reserve(self._block)
                self._end = self._next + self._block
            number = self._next
            self._next += 1
            return number

    async def _reserve(self, count: int) -> int:
        """Reserve ``count`` numbers for this process; return the first."""
        while True:
            try:
                entry = await self._kv.get(_COUNTER)
            except KeyNotFoundError:
                try:
                    await self._kv.create(_COUNTER, str(count).encode())
                except KeyWrongLastSequenceError:
                    continue
                return 1
            last = int(entry.value or b"0")
            try:
                await self._kv.update(_COUNTER, str(last + count).encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return last + 1
