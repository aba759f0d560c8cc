"""What a handler may use: identity of the connection, a clock, ports and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from csms.ports import TokenAuthorizer, TransactionIds


def utc_now() -> datetime:
    return datetime.now(UTC)


def ocpp_time(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and Z, as OCPP examples write it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class HandlerContext:
    station_id: str
    ocpp_version: str
    transaction_ids: TransactionIds
    tokens: TokenAuthorizer
    heartbeat_interval_s: int = 300
    clock: Callable[[], datetime] = utc_now

    def now(self) -> str:
        return ocpp_time(self.clock())
