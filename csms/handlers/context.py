"""What a handler may use: identity of the connection, a clock, ports and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from csms.ports import TokenAuthorizer, TransactionIds


class Request(Protocol):
    """What a handler gets of a CALL: the payload, parsed only when a handler reads it (most
    answers do not depend on it, and parsing a MeterValues payload costs more than validating
    it). ``csms.protocol.Call`` is one."""

    @property
    def payload(self) -> dict[str, Any]: ...


class Flagged(NamedTuple):
    """A normal answer to a request that is suspicious all the same (csms.domain.flags): the
    session sends ``payload`` and records ``flag`` in the CALL's stored event."""

    payload: dict[str, Any]
    flag: str


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A :class:`Request` over an already parsed payload (tests, replays)."""

    payload: dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def ocpp_time(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and Z, as OCPP examples write it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class CertificateRequests(Protocol):
    """Whether the CSMS will sign a station's CSR now (a renewal it started, A02); read from
    memory (``streams.registry.StationRegistry``)."""

    def expects_csr(self, identity: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class HandlerContext:
    station_id: str
    ocpp_version: str
    transaction_ids: TransactionIds
    tokens: TokenAuthorizer
    heartbeat_interval_s: int = 300
    clock: Callable[[], datetime] = utc_now
    certificates: CertificateRequests | None = None
    """None: no CA key is configured, every SignCertificate is Rejected."""
    boot_status: str = "Accepted"
    """The BootNotification answer: Pending for a station let in with an expired certificate
    while the CSMS renews it (A18, A00.FR.430)."""

    def now(self) -> str:
        return ocpp_time(self.clock())
