"""1.6 transaction ids from a JetStream key-value bucket (implements csms.ports.TransactionIds).

Shared by every gateway process and kept across restarts. ``allocate(key)``:
1. the key already has an id → that id (a retried StartTransaction gets the same answer);
2. otherwise take the next number from the ``next`` counter with compare-and-set, then
   ``create`` the key; if another process created it first, return theirs (the number we took is
   simply skipped, never reused).
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

BUCKET = "CSMS_TX16"
_COUNTER = "next"


class KvTransactionIds:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

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

    async def allocate(self, key: str) -> int:
        existing = await self._lookup(key)
        if existing is not None:
            return existing
        candidate = await self._next_number()
        try:
            await self._kv.create(key, str(candidate).encode())
        except KeyWrongLastSequenceError:
            raced = await self._lookup(key)
            if raced is None:
                raise
            return raced
        return candidate

    async def _lookup(self, key: str) -> int | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return int(entry.value or b"0")

    async def _next_number(self) -> int:
        while True:
            try:
                entry = await self._kv.get(_COUNTER)
            except KeyNotFoundError:
                try:
                    await self._kv.create(_COUNTER, b"1")
                except KeyWrongLastSequenceError:
                    continue
                return 1
            number = int(entry.value or b"0") + 1
            try:
                await self._kv.update(_COUNTER, str(number).encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return number
