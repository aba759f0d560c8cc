"""What the gateway tells the outside world about its sessions (small Protocols; adapters are
wired in ``csms.app``)."""

from __future__ import annotations

from typing import Protocol


class SessionObserver(Protocol):
    """Told synchronously (from socket callbacks) when a station session opens and closes; an
    implementation must not block (queue the work)."""

    def opened(self, station_id: str, ocpp_version: str, session_id: str) -> None: ...

    def closed(self, station_id: str, session_id: str) -> None: ...
