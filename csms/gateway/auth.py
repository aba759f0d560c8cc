"""Who may open a station connection: the decision, taken before the HTTP upgrade. Pure.

Inputs are what the handshake shows (URL identity, ``Authorization`` header, TLS or not, the
client certificate the TLS layer already verified against the CSO CA) and the station registry
(the ``StationDirectory`` port, read from memory). The output is a :class:`Verdict`: 101, or a
refusal (401 with ``WWW-Authenticate``, or 429 once an identity/address pair or an address has
failed too often) with the security event to record. Nothing here does I/O or OCPP.

Rules (reliability.md §2.1-2.4, §5.5):
- the registered profile is a floor: a station registered for 2 is refused on ws://, one
  registered for 3 is refused without a valid client certificate (A11, A12, A21);
- Basic auth: the username equals the URL identity (case-insensitively on 2.x), the password is
  split off at the first colon (A3, A7); unknown identities are refused exactly like wrong
  passwords (uniform 401, same cost: A4) unless unknown stations are accepted (demo);
- profile 3: the certificate's CN is the serial registered for the identity, O the CSO name, and
  the fingerprint the pinned one if any (A19, A20); during a renewal the certificate signed and
  sent but not yet accepted by the station matches too (A02);
- validity (A18): when the TLS layer left the time check to us (:class:`CertificateValidity`),
  a presented certificate whose verified chain has one certificate out of its validity period is
  refused (401, ``InvalidChargingStationCertificate``), whatever the station's profile; the one
  exception is an expired leaf (issuers valid) of a profile-3 station flagged
  ``allow_expired_certificate`` when the CSMS can renew certificates: accepted *on probation*
  (recorded; BootNotification Pending and a renewal started: the gateway's part);
- failures are counted per (identity, address) and per address in leaky buckets; over budget the
  attempt is refused without checking the password (CWE-307, A23), and only the first refusal of a
  burst is recorded (A00.FR.316 note). A station on its own address is not affected by an attacker
  elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from csms.gateway.limits import EventSampler

UnknownStations = Literal["accept", "reject"]

# Security event types (OCPP 2.x Part 2 appendix names where one exists).
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCsms"
INVALID_CERTIFICATE = "InvalidChargingStationCertificate"
PROFILE_MISMATCH = "SecurityProfileMismatch"
TOO_MANY_FAILURES = "TooManyFailedAuthentications"
REPLACED_REPEATEDLY = "SessionReplacedRepeatedly"
CLOSED_FOR_ABUSE_REPEATEDLY = "ClosedForAbuseRepeatedly"
"""Not an OCPP event type: an identity/address pair (or an address) closed with 1008 for abuse
(ping flood, CALL flood, strike budget) too often; its upgrades are refused with 429 for a while."""
EXPIRED_CERTIFICATE_ACCEPTED = "ExpiredCertificateAccepted"
"""Not an OCPP event type: a profile-3 station flagged ``allow_expired_certificate`` came with an
expired certificate and was let in on probation (A18: BootNotification Pending, renewal)."""
INVALID_TLS_VERSION = "InvalidTLSVersion"
INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"
FAILED_TLS_HANDSHAKE = "FailedTLSHandshake"
"""Not an OCPP event type: a TLS failure that is none of the three above."""
TLS_UNIDENTIFIED = "#tls"
"""The pseudo-identity (no station can have a ``#``) whose subject holds failed TLS handshakes:
they happen before the URL, so before any identity, is known."""

_TLS_REASONS: dict[str, str] = {
    "UNSUPPORTED_PROTOCOL": INVALID_TLS_VERSION,
    "WRONG_VERSION_NUMBER": INVALID_TLS_VERSION,
    "TLSV1_ALERT_PROTOCOL_VERSION": INVALID_TLS_VERSION,
    "VERSION_TOO_LOW": INVALID_TLS_VERSION,
    "NO_SHARED_CIPHER": INVALID_TLS_CIPHER_SUITE,
    "NO_CIPHERS_AVAILABLE": INVALID_TLS_CIPHER_SUITE,
    "CERTIFICATE_VERIFY_FAILED": INVALID_CERTIFICATE,
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": INVALID_CERTIFICATE,
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": INVALID_CERTIFICATE,
}


class RegisteredStation(Protocol):
    @property
    def profile(self) -> int: ...
    @property
    def cert_serial(self) -> str | None: ...
    @property
    def cert_fingerprint(self) -> str | None: ...
    @property
    def revoked_fingerprints(self) -> tuple[str, ...]: ...
    @property
    def allow_expired_certificate(self) -> bool: ...
    def certificate_identities(self) -> tuple[tuple[str | None, str | None], ...]:
        """(CN, fingerprint or None) pairs: the registered one, and during a renewal the
        certificate sent to the station and not yet accepted by it (A02)."""
        ...


class StationDirectory(Protocol):
    """The station registry as the gateway sees it: synchronous, from memory."""

    def lookup(self, identity: str) -> RegisteredStation | None: ...

    def check_password(self, identity: str, password: bytes) -> bool:
        """False for unknown identities too, after the same amount of work."""
        ...


@dataclass(frozen=True, slots=True)
class CertificateValidity:
    """The validity periods of a client certificate's verified chain, for the gateway to check
    itself: the TLS layer verified the chain without time (``X509_V_FLAG_NO_CHECK_TIME``, A18)."""

    not_before: datetime
    not_after: datetime
    issuers: tuple[tuple[datetime, datetime], ...] | None
    """(not before, not after) of each certificate above the leaf, up to the trust anchor;
    None: the verified chain could not be read, so the issuers' periods are unknown."""


def validity_problem(validity: CertificateValidity, now: datetime) -> tuple[str, bool] | None:
    """Why the chain is not valid at ``now`` and whether only the leaf has expired (the one
    case a flagged station may come in with), or None."""
    if validity.issuers is None:
        return "verified chain unavailable: the issuers' validity is unknown", False
    for not_before, not_after in validity.issuers:
        if now > not_after:
            return "an issuer certificate has expired", False
        if now < not_before:
            return "an issuer certificate is not yet valid", False
    if now < validity.not_before:
        return "certificate is not yet valid", False
    if now > validity.not_after:
        return "certificate has expired", True
    return None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A client certificate the TLS layer verified against the CSO CA."""

    common_name: str | None
    organization: str | None
    fingerprint: str
    """SHA-256 of the DER encoding, lower-case hex."""
    validity: CertificateValidity | None = None
    """None: the TLS layer checked the validity periods itself (and refused any out of them)."""


@dataclass(frozen=True, slots=True)
class Handshake:
    identity: str
    """As in the URL, percent-decoded."""
    address: str
    authorization: str | None
    tls: bool = False
    certificate: ClientCertificate | None = None
    case_insensitive: bool = True
    """2.x identities (and so usernames) are case-insensitive; 1.6 ones are not."""

    @property
    def profile(self) -> int:
        """The security profile this connection presents."""
        if self.tls:
            return 3 if self.certificate is not None else 2
        return 1 if self.authorization is not None else 0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int
    """101 accepted; 401 refused; 429 refused for too many failures."""
    reason: str = ""
    """For logs and the security event; never contains a credential."""
    event: str | None = None
    """Security event type, set when this refusal (or acceptance on probation) is recorded."""
    probation: bool = False
    """Accepted with an expired certificate (A18): BootNotification Pending, renewal started."""

    @property
    def accepted(self) -> bool:
        return self.status == 101


ACCEPTED = Verdict(101)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the security-event recorder receives."""

    identity: str
    address: str
    status: int
    event: str
    reason: str
    profile: int


@dataclass(frozen=True, slots=True)
class AuthConfig:
    unknown_stations: UnknownStations = "accept"
    cso_name: str | None = None
    """Profile 3: the O of station certificates (A00.FR.404); None: not checked."""
    realm: str = "OCPP"
    failures_per_identity_address: int = 10
    failures_per_address: int = 100
    failure_window_s: float = 60.0
    abuse_closes_per_identity_address: int = 3
    """Connections of one identity from one address closed with 1008 for abuse (D7, D8, D12)
    within ``failure_window_s`` before its next upgrade is refused with 429 (the leak drains one
    per window/budget): a flooder that reconnects at once costs a refused upgrade, not a session."""
    abuse_closes_per_address: int = 30
    certificate_renewal: bool = False
    """The CSMS can renew station certificates (a CA key is configured, A02): only then may a
    station flagged ``allow_expired_certificate`` come in with an expired one (A18)."""


class FailureThrottle:
    """Leaky buckets of failures: each failure adds 1, the level drains at ``budget`` per
    ``window_s``; once full (``budget`` failures in a burst) the key is blocked until it drains
    by one. Bounded memory (the least recently failed keys are evicted)."""

    def __init__(self, budget: int, window_s: float, max_keys: int = 100_000) -> None:
        self.budget = budget
        self.rate = budget / window_s
        self.max_keys = max_keys
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        level, since = self._levels.get(key, (0.0, now))
        return max(0.0, level - (now - since) * self.rate)

    def blocked(self, key: str, now: float) -> bool:
        """True when one more failure would overflow the bucket."""
        return self._level(key, now) + 1.0 > self.budget

    def fail(self, key: str, now: float) -> None:
        level = self._level(key, now) + 1.0
        self._levels[key] = (level, now)
        self._levels.move_to_end(key)
        if len(self._levels) > self.max_keys:
            self._levels.popitem(last=False)

    def clear(self, key: str) -> None:
        self._levels.pop(key, None)


def _pair(address: str, identity_key: str) -> str:
    """The key of one identity from one address in the per-pair throttles (``identity_key``:
    the session key, 2.x identities already lower-cased)."""
    return f"{address}\x00{identity_key}"


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """``Basic base64(user:pass)`` → (user, password bytes); split at the first colon, as the
    identity cannot contain one and a password may (A7). 1.6 keys may be raw bytes."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", errors="replace"), password


def tls_failure_event(err: BaseException) -> tuple[str, str] | None:
    """(event type, reason) of a failed TLS handshake worth recording, or None: timeouts,
    resets and EOFs (a port scan, a client giving up) are only logged."""
    if not isinstance(err, ssl.SSLError) or isinstance(err, ssl.SSLEOFError):
        return None
    reason = getattr(err, "reason", None) or ""
    event = _TLS_REASONS.get(reason, FAILED_TLS_HANDSHAKE)
    if isinstance(err, ssl.SSLCertVerificationError):
        event = INVALID_CERTIFICATE
        reason = f"client certificate: {err.verify_message}"
    return event, f"TLS handshake failed: {reason or err}"


class Authenticator:
    """Decides each handshake (see the module docstring); keeps only the failure buckets."""

    def __init__(
        self,
        directory: StationDirectory,
        config: AuthConfig,
        on_refused: Callable[[Refusal], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.config = config
        self.on_refused = on_refused
        self.clock = clock
        self.wall_clock = wall_clock
        """Certificate validity periods are checked against it (A18)."""
        window = config.failure_window_s
        self._pairs = FailureThrottle(config.failures_per_identity_address, window)
        self._addresses = FailureThrottle(config.failures_per_address, window)
        self._abusive_pairs = FailureThrottle(config.abuse_closes_per_identity_address, window)
        self._abusive_addresses = FailureThrottle(config.abuse_closes_per_address, window)
        self.tls_failures = EventSampler(clock=clock)

    def alert(self, identity: str, address: str, event: str, reason: str) -> None:
        """Record a security event that is not a refusal (``status`` 0)."""
        if self.on_refused is not None:
            self.on_refused(Refusal(identity, address, 0, event, reason, 0))

    def abused(self, station_id: str, address: str, reason: str) -> None:
        """A connection of ``station_id`` (the session key: 2.x already lower-cased) from
        ``address`` was closed with 1008 for abuse. Counted per pair and per address; the close
        that fills a bucket is recorded as a security event (the refusals after it are not)."""
        now = self.clock()
        pair = _pair(address, station_id)
        was = self._abusive_pairs.blocked(pair, now) or self._abusive_addresses.blocked(
            address, now
        )
        self._abusive_pairs.fail(pair, now)
        self._abusive_addresses.fail(address, now)
        if not was and (
            self._abusive_pairs.blocked(pair, now) or self._abusive_addresses.blocked(address, now)
        ):
            why = f"closed for abuse too often ({reason}); upgrades refused with 429 for a while"
            self.alert(station_id, address, CLOSED_FOR_ABUSE_REPEATEDLY, why)

    def tls_failed(self, address: str, err: BaseException) -> None:
        """A TLS handshake on the wss:// port failed: record it (sampled per address and
        globally: ``EventSampler``) under :data:`TLS_UNIDENTIFIED`. Refusal path only."""
        failure = tls_failure_event(err)
        if failure is None or self.on_refused is None:
            return
        suppressed = self.tls_failures.sample(address)
        if suppressed is None:
            return
        event, reason = failure
        if suppressed:
            reason += f" ({suppressed} more from this address not recorded)"
        self.on_refused(Refusal(TLS_UNIDENTIFIED, address, 0, event, reason, 2))

    def decide(self, hs: Handshake) -> Verdict:
        now = self.clock()
        identity_key = hs.identity.lower() if hs.case_insensitive else hs.identity
        pair = _pair(hs.address, identity_key)
        if self._pairs.blocked(pair, now) or self._addresses.blocked(hs.address, now):
            return Verdict(429, "too many failed attempts; retry later")
        if self._abusive_pairs.blocked(pair, now) or self._abusive_addresses.blocked(
            hs.address, now
        ):
            return Verdict(429, "closed for abuse too often; retry later")
        verdict = self._check(hs)
        if verdict.accepted:
            self._pairs.clear(pair)
            if verdict.event is not None and self.on_refused is not None:  # on probation
                self.on_refused(
                    Refusal(hs.identity, hs.address, verdict.status, verdict.event,
                            verdict.reason, hs.profile)
                )  # fmt: skip
            return verdict
        self._pairs.fail(pair, now)
        self._addresses.fail(hs.address, now)
        if self._pairs.blocked(pair, now) or self._addresses.blocked(hs.address, now):
            verdict = Verdict(verdict.status, verdict.reason + "; now throttled", TOO_MANY_FAILURES)
        if verdict.event is not None and self.on_refused is not None:
            self.on_refused(
                Refusal(hs.identity, hs.address, verdict.status, verdict.event, verdict.reason,
                        hs.profile)
            )  # fmt: skip
        return verdict

    def _check(self, hs: Handshake) -> Verdict:
        station = self.directory.lookup(hs.identity)
        expired = self._expired_certificate(hs, station)
        if expired is not None:
            return expired
        if station is None:
            if self.config.unknown_stations == "accept":
                return ACCEPTED
            # Same answer and the same work as a wrong password: no enumeration (A4).
            credentials = parse_basic(hs.authorization)
            self.directory.check_password(hs.identity, credentials[1] if credentials else b"")
            return Verdict(401, "unknown station", FAILED_TO_AUTHENTICATE)
        if station.profile <= 0:
            return ACCEPTED
        if station.profile >= 2 and not hs.tls:
            return Verdict(
                401, f"registered for profile {station.profile}, came without TLS", PROFILE_MISMATCH
            )
        if station.profile >= 3:
            return self._check_certificate(hs, station)
        return self._check_password(hs)

    def _check_password(self, hs: Handshake) -> Verdict:
        credentials = parse_basic(hs.authorization)
        if credentials is None:
            return Verdict(401, "no Basic credentials", FAILED_TO_AUTHENTICATE)
        user, password = credentials
        same = user.lower() == hs.identity.lower() if hs.case_insensitive else user == hs.identity
        if not same:
            self.directory.check_password(hs.identity, b"")  # uniform cost
            return Verdict(401, "username is not the URL identity", FAILED_TO_AUTHENTICATE)
        if self.directory.check_password(hs.identity, password):
            return ACCEPTED
        if not hs.case_insensitive and not all(0x20 < b < 0x7F for b in password):
            # 1.6 interop: a station that sends the AuthorizationKey's raw bytes while the
            # registry holds its hexadecimal spelling (reliability.md §2.2 caveat).
            for spelled in (password.hex().upper(), password.hex()):
                if self.directory.check_password(hs.identity, spelled.encode()):
                    return ACCEPTED
        return Verdict(401, "wrong password", FAILED_TO_AUTHENTICATE)

    def _expired_certificate(
        self, hs: Handshake, station: RegisteredStation | None
    ) -> Verdict | None:
        """A18: the refusal of a presented certificate out of its validity period, or None
        (valid, or an expired leaf a flagged profile-3 station may come in with)."""
        validity = hs.certificate.validity if hs.certificate is not None else None
        if validity is None:
            return None
        problem = validity_problem(validity, self.wall_clock())
        if problem is None:
            return None
        why, leaf_expired = problem
        if leaf_expired and station is not None and station.profile >= 3:
            if station.allow_expired_certificate and self.config.certificate_renewal:
                return None  # the identity checks follow; _check_certificate puts it on probation
            if station.allow_expired_certificate:
                why += " (allow_expired_certificate is set, but no CA key to renew it with)"
        return Verdict(401, f"client certificate: {why}", INVALID_CERTIFICATE)

    def _check_certificate(self, hs: Handshake, station: RegisteredStation) -> Verdict:
        cert = hs.certificate
        if cert is None:
            return Verdict(401, "registered for profile 3, came without a client certificate",
                           PROFILE_MISMATCH)  # fmt: skip
        identities = station.certificate_identities()
        if not any(serial is not None and cert.common_name == serial for serial, _ in identities):
            return Verdict(401, "certificate CN is not the serial registered for this station",
                           INVALID_CERTIFICATE)  # fmt: skip
        if self.config.cso_name is not None and cert.organization != self.config.cso_name:
            return Verdict(401, "certificate O is not the CSO", INVALID_CERTIFICATE)
        if cert.fingerprint in station.revoked_fingerprints or not any(
            cert.common_name == serial and pinned in (None, cert.fingerprint)
            for serial, pinned in identities
        ):
            return Verdict(401, "certificate is not the one registered", INVALID_CERTIFICATE)
        if (
            cert.validity is not None
            and station.allow_expired_certificate
            and self.wall_clock() > cert.validity.not_after
        ):  # reached only when the issuers are valid and renewal is possible (see above)
            return Verdict(101, "expired client certificate accepted (allow_expired_certificate): "
                           "BootNotification Pending, certificate renewal started",
                           EXPIRED_CERTIFICATE_ACCEPTED, probation=True)  # fmt: skip
        return ACCEPTED
