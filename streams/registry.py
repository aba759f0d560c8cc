"""The station registry: who may connect, with which security profile and which credential.

One JetStream key-value bucket (``CSMS_STATIONS``), one key per station: the subject token of
the lower-cased identity (2.x identities are case-insensitive, so ``CS001`` and ``cs001`` are one
station; on 1.6 too, so that no two stations differ only in case). The value is a JSON
:class:`StationRecord`. Gateways keep the whole bucket in memory (:meth:`StationRegistry.start`
watches it), so checking a handshake costs no network round trip; a change made by the CLI on
any machine reaches every gateway within the watch latency.

Passwords are stored as salted PBKDF2-HMAC-SHA256 (ADR 0004: cheap enough for a reconnect storm
because the passwords themselves are long and random); the hash string carries its parameters,
so the cost can be raised later without invalidating stored hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import string
from typing import Final

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from streams.kv_initial import current_keys, ends_initial
from streams.subjects import station_of, token

log = logging.getLogger(__name__)

BUCKET: Final = "CSMS_STATIONS"
PBKDF2_ITERATIONS: Final = 1000
"""~0.25 ms per check on one core: 10,000 reconnecting stations cost ~2.5 s of CPU (ADR 0004)."""
MIN_PASSWORD_CHARS: Final = 16
MAX_PASSWORD_CHARS: Final = 64
GENERATED_PASSWORD_CHARS: Final = 40
RETRY_S: Final = 1.0
MAX_REVOKED: Final = 8
PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits + "*-_=:+|@."
"""2.x passwordString (case-sensitive); also valid as a 1.6 AuthorizationKey string."""


class StationRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One registered station. ``profile``: 0 none, 1 Basic on ws://, 2 TLS + Basic, 3 mTLS."""

    identity: str
    profile: int
    password_hash: str | None = None
    cert_serial: str | None = None
    """Profile 3: the station serial number its certificate's CN must carry (A00.FR.405)."""
    cert_fingerprint: str | None = None
    """Profile 3, optional: SHA-256 of the certificate (DER, lower-case hex) to pin one cert."""
    pending_password_hash: str | None = None
    """A new password sent to the station and not yet accepted by it: both work meanwhile
    (A01.FR.03/04: the old one stops only once the station accepted the new one)."""
    csr_expected: bool = False
    """A certificate renewal (A02) is under way: the station's SignCertificate is answered
    Accepted (the CSMS will sign it); otherwise Rejected."""
    pending_cert_serial: str | None = None
    pending_cert_fingerprint: str | None = None
    """A certificate the CSMS signed and sent (CertificateSigned) that the station has not yet
    accepted: it works alongside the registered one until the station answers (A02)."""

    revoked_fingerprints: tuple[str, ...] = ()
    """Certificates the CSMS signed for renewals the station did not accept (the last
    ``MAX_REVOKED``): refused although their CN matches (no CRL or OCSP here)."""
    allow_expired_certificate: bool = False
    """Profile 3, set by the operator only (A18, A00.FR.429/430): the station may connect with
    its registered certificate after it expired (issuers still valid); it is then answered
    BootNotification Pending and its certificate renewed (A02). Cleared when a renewal is
    accepted: the new certificate is valid and pinned, the exception has served its purpose."""

    def certificate_identities(self) -> tuple[tuple[str | None, str | None], ...]:
        """(CN, fingerprint or None for any) pairs a client certificate may match."""
        current = (self.cert_serial, self.cert_fingerprint)
        if self.pending_cert_fingerprint is None:
            return (current,)
        return current, (self.pending_cert_serial, self.pending_cert_fingerprint)

    def check_password(self, password: bytes) -> bool:
        return any(
            stored is not None and verify_password(stored, password)
            for stored in (self.password_hash, self.pending_password_hash)
        )


def generate_password(ocpp_version: str = "2.0.1") -> str:
    """40 random characters: of the passwordString alphabet (~246 bits); for 1.6, the
    hexadecimal spelling of a random 20-byte AuthorizationKey (1.6 security white paper)."""
    if ocpp_version == "1.6":
        return secrets.token_hex(20).upper()
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_CHARS))


def check_password_rules(password: str) -> None:
    """Provisioning rules of 2.0.1 Ed3 / 2.1 A00.FR.205: 16 to 64 passwordString characters."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ValueError(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, "
            f"not {len(password)}"
        )
    if any(c not in PASSWORD_ALPHABET for c in password):
        raise ValueError("a password uses only a-z A-Z 0-9 * - _ = : + | @ .")


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2-sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: bytes) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2-sha256":
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password, bytes.fromhex(salt), int(iterations))
        return hmac.compare_digest(computed, bytes.fromhex(digest))
    except ValueError:
        return False


_DECOY: Final = hash_password(generate_password())
"""Checked for unknown identities, so that they cost as long as a wrong password (A4)."""


def key_of(identity: str) -> str:
    return token(identity.lower())


class StationRegistry:
    """The bucket, and (after :meth:`start`) an in-memory copy kept current by a KV watch.

    ``lookup`` and ``check_password`` are synchronous and read only memory: they implement the
    gateway's ``csms.gateway.auth.StationDirectory`` port.
    """

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._cache: dict[str, tuple[int, StationRecord]] = {}
        """key → (revision, record); a write through ``put`` is visible here at once."""
        self._watcher: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> StationRegistry:
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas
                )
            )
        return cls(kv)

    # -- the gateway's view (memory only) --------------------------------------------------
    def lookup(self, identity: str) -> StationRecord | None:
        cached = self._cache.get(key_of(identity))
        return cached[1] if cached is not None else None

    def expects_csr(self, identity: str) -> bool:
        """The ``CertificateRequests`` port of the SignCertificate handler (memory only)."""
        station = self.lookup(identity)
        return station is not None and station.csr_expected

    def check_password(self, identity: str, password: bytes) -> bool:
        station = self.lookup(identity)
        if station is None or station.password_hash is None:
            verify_password(_DECOY, password)  # the same cost as a wrong password
            return False
        return station.check_password(password)

    async def start(self, timeout_s: float = 30.0) -> None:
        """Load every record and follow changes; returns once the copy is complete."""
        self._watcher = asyncio.get_running_loop().create_task(self._follow())
        await asyncio.wait_for(asyncio.shield(self._synced.wait()), timeout_s)

    async def _follow(self) -> None:
        """Watch the bucket for ever; after a failure, watch again and reconcile (keys purged
        meanwhile are dropped from the copy)."""
        while True:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - NATS trouble: keep the copy, retry
                log.warning("station registry watch failed (%s); watching again", err)
                await asyncio.sleep(RETRY_S)  # back-off, not synchronisation

    async def _watch_once(self) -> None:
        watcher = await self._kv.watchall()
        seen: set[str] | None = set()  # keys of the initial values; None once reconciled
        try:
            async for entry in watcher:
                if entry is not None:
                    if seen is not None:
                        seen.add(entry.key)
                    self._apply(entry.key, entry.revision or 0, entry.operation, entry.value)
                if seen is not None and await ends_initial(watcher, entry):
                    for key in set(self._cache) - seen:
                        self._cache.pop(key, None)
                    seen = None
                    self._synced.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply(self, key: str, revision: int, operation: str | None, value: bytes | None) -> None:
        cached = self._cache.get(key)
        if cached is not None and cached[0] >= revision:
            return  # already applied by our own put
        if operation in ("DEL", "PURGE") or not value:
            self._cache.pop(key, None)
        else:
            try:
                self._cache[key] = (revision, msgspec.json.decode(value, type=StationRecord))
            except msgspec.DecodeError:
                log.error("station registry: unreadable record %s", key)
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next change of the in-memory copy (tests, tools)."""
        await self._changed.wait()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    # -- administration (network) ----------------------------------------------------------
    async def put(self, record: StationRecord) -> None:
        key, value = key_of(record.identity), msgspec.json.encode(record)
        revision = await self._kv.put(key, value)
        self._apply(key, revision, None, value)

    async def get(self, identity: str) -> StationRecord | None:
        try:
            entry = await self._kv.get(key_of(identity))
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"", type=StationRecord)

    async def remove(self, identity: str) -> bool:
        if await self.get(identity) is None:
            return False
        await self._kv.delete(key_of(identity))
        self._cache.pop(key_of(identity), None)
        return True

    async def stage_password(self, identity: str, password: str) -> None:
        """Step 1 of a change over OCPP: the new password works alongside the old one."""
        record = await self._must_get(identity)
        await self.put(
            msgspec.structs.replace(record, pending_password_hash=hash_password(password))
        )

    async def settle_password(self, identity: str, accepted: bool) -> None:
        """Step 2: the station accepted (the old password stops working) or not (the new one is
        forgotten and the old one stays)."""
        record = await self._must_get(identity)
        if record.pending_password_hash is None:
            return
        if accepted:
            record = msgspec.structs.replace(
                record, password_hash=record.pending_password_hash, pending_password_hash=None
            )
        else:
            record = msgspec.structs.replace(record, pending_password_hash=None)
        await self.put(record)

    async def expect_csr(self, identity: str, expected: bool) -> None:
        """A renewal starts (the station's SignCertificate will be Accepted) or ends."""
        record = await self._must_get(identity)
        await self.put(msgspec.structs.replace(record, csr_expected=expected))

    async def stage_certificate(self, identity: str, serial: str, fingerprint: str) -> None:
        """The certificate signed for the station works alongside the registered one."""
        record = await self._must_get(identity)
        await self.put(
            msgspec.structs.replace(
                record, pending_cert_serial=serial, pending_cert_fingerprint=fingerprint
            )
        )

    async def settle_certificate(self, identity: str, accepted: bool) -> None:
        """The station accepted the new certificate: it becomes the registered (and pinned)
        one and the old one stops working; or not: the new one is revoked (it was signed and
        its CN matches) and the old one stays. Either way the renewal is over."""
        record = await self._must_get(identity)
        signed = record.pending_cert_fingerprint
        if accepted and signed is not None:
            record = msgspec.structs.replace(
                record,
                cert_serial=record.pending_cert_serial,
                cert_fingerprint=signed,
                allow_expired_certificate=False,
            )
        elif signed is not None:  # it exists and its CN matches: refuse it by name
            revoked = (*record.revoked_fingerprints, signed)[-MAX_REVOKED:]
            record = msgspec.structs.replace(record, revoked_fingerprints=revoked)
        await self.put(
            msgspec.structs.replace(
                record, csr_expected=False, pending_cert_serial=None, pending_cert_fingerprint=None
            )
        )

    async def allow_expired_certificate(self, identity: str, allowed: bool) -> bool:
        """Set or clear the A18 exception; returns its previous value."""
        record = await self._must_get(identity)
        await self.put(msgspec.structs.replace(record, allow_expired_certificate=allowed))
        return record.allow_expired_certificate

    async def _must_get(self, identity: str) -> StationRecord:
        record = await self.get(identity)
        if record is None:
            raise ValueError(f"{identity} is not registered")
        return record

    async def all(self) -> list[StationRecord]:
        records: list[StationRecord] = []
        for key in await current_keys(self._kv):
            record = await self.get(station_of(key))
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: r.identity.lower())
