"""Operator API keys in a JetStream key-value bucket, stored hashed, seen by every API process.

A key reads ``csms_<key id>_<secret>``; the bucket keeps, under the key id, its name and the
SHA-256 of the whole key (the secret is random, 256 bits: a fast hash is enough). The secret is
shown once, by ``csms apikey add``. While the bucket is empty the API is open.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, InvalidKeyError, KeyNotFoundError
from nats.js.kv import KeyValue

from streams.kv_initial import current_keys
from streams.kv_mirror import KvMirror

BUCKET = "CSMS_API_KEYS"
PREFIX = "csms_"


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    sha256: str
    created_at: str


_decode = msgspec.json.Decoder(ApiKey).decode
_encode = msgspec.json.Encoder().encode


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas)
        )


class ApiKeys:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._mirror = KvMirror(kv)

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> ApiKeys:
        return cls(await open_bucket(js, replicas))

    # -- management (the CLI) ---------------------------------------------------------
    async def add(self, name: str) -> tuple[ApiKey, str]:
        """A new key: its record and the key text (shown once, never stored)."""
        key_id = secrets.token_hex(6)
        text = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        record = ApiKey(key_id=key_id, name=name, sha256=_digest(text), created_at=created)
        await self._kv.create(key_id, _encode(record))
        return record, text

    async def list(self) -> list[ApiKey]:
        records = [await self._get(k) for k in await current_keys(self._kv)]
        return sorted((r for r in records if r is not None), key=lambda r: r.created_at)

    async def revoke(self, key_id_or_name: str) -> int:
        """Delete the key with this id, or every key with this name; how many were deleted."""
        revoked = 0
        for record in await self.list():
            if key_id_or_name in (record.key_id, record.name):
                await self._kv.delete(record.key_id)
                revoked += 1
        return revoked

    # -- verification (the API) -------------------------------------------------------
    async def start(self) -> None:
        await self._mirror.start()

    async def stop(self) -> None:
        await self._mirror.stop()

    @property
    def required(self) -> bool:
        return bool(self._mirror.values)

    async def verify(self, presented: str) -> ApiKey | None:
        if not presented.startswith(PREFIX):
            return None
        key_id = presented[len(PREFIX) :].partition("_")[0]
        if not key_id:
            return None
        cached = self._mirror.values.get(key_id)
        record = _decode(cached) if cached is not None else await self._get(key_id)
        if record is None or not hmac.compare_digest(record.sha256, _digest(presented)):
            return None
        return record

    async def _get(self, key_id: str) -> ApiKey | None:
        try:
            entry = await self._kv.get(key_id)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        return _decode(entry.value) if entry.value else None
