"""Id tokens for Authorize in a JetStream key-value bucket (CRUD from the operator API).

:class:`KvTokens` implements ``csms.ports.TokenAuthorizer``: ``status`` is answered from an
in-memory mirror of the bucket (no NATS round trip per Authorize). A known token answers its
stored status (``Expired`` once its expiry date has passed); an unknown one answers Accepted
while ``accept_unknown`` (today's default, the embedded demo) and Invalid otherwise. Tokens are
compared case-insensitively (1.6 IdToken is a CiString).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, InvalidKeyError, KeyNotFoundError
from nats.js.kv import KeyValue

from streams.kv_initial import current_keys
from streams.kv_mirror import KvMirror
from streams.subjects import token

BUCKET = "CSMS_TOKENS"

TokenStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]


class IdTokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    id_token: str
    status: TokenStatus = "Accepted"
    token_type: str = "ISO14443"
    """2.x IdTokenEnumType (1.6 has none)."""
    expiry_date: datetime | None = None
    parent_id_token: str | None = None


_decode = msgspec.json.Decoder(IdTokenRecord).decode
_encode = msgspec.json.Encoder().encode


def _key(id_token: str) -> str:
    return token(id_token.casefold())


class KvTokens:
    def __init__(self, kv: KeyValue, accept_unknown: bool = True) -> None:
        self._kv = kv
        self._mirror = KvMirror(kv)
        self.accept_unknown = accept_unknown

    @classmethod
    async def open(
        cls, js: JetStreamContext, replicas: int = 1, accept_unknown: bool = True
    ) -> KvTokens:
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas
                )
            )
        return cls(kv, accept_unknown)

    async def start(self) -> None:
        await self._mirror.start()

    async def stop(self) -> None:
        await self._mirror.stop()

    def status(self, id_token: str) -> str:
        cached = self._mirror.values.get(_key(id_token))
        if cached is None:
            return "Accepted" if self.accept_unknown else "Invalid"
        record = _decode(cached)
        if record.expiry_date is not None and record.expiry_date <= datetime.now(UTC):
            return "Expired"
        return record.status

    async def put(self, record: IdTokenRecord) -> None:
        await self._kv.put(_key(record.id_token), _encode(record))

    async def get(self, id_token: str) -> IdTokenRecord | None:
        try:
            entry = await self._kv.get(_key(id_token))
        except (KeyNotFoundError, InvalidKeyError):
            return None
        return _decode(entry.value) if entry.value else None

    async def delete(self, id_token: str) -> bool:
        if await self.get(id_token) is None:
            return False
        await self._kv.delete(_key(id_token))
        return True

    async def all(self) -> list[IdTokenRecord]:
        """Every token, sorted (read from the bucket, not the mirror: a write made an instant
        ago is listed)."""
        records = [await self._get_key(k) for k in await current_keys(self._kv)]
        return sorted((r for r in records if r), key=lambda r: r.id_token.casefold())

    async def _get_key(self, key: str) -> IdTokenRecord | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return _decode(entry.value) if entry.value else None
