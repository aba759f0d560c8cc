"""The HTTP upgrade: station identity from the URL and the subprotocol. Pure functions.

OCPP-J 1.6 §3.1; 2.x Part 4 §3.1: URL = endpoint + "/" + percent-encoded identity. 2.x
identities are identifierString (``a-z A-Z 0-9 * - _ = : + | @ .``), at most 48 characters,
case-insensitive: we key sessions by the lower-cased identity on 2.x.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from csms.protocol import negotiate_subprotocol

_IDENTIFIER_STRING = re.compile(r"[a-zA-Z0-9*\-_=+|@.]{1,48}")
"""identifierString without ``:``: the identity is the Basic-auth username (Part 4 §3.1.1)."""
MAX_16_IDENTITY = 255  # 1.6 sets no limit; we bound it


class UpgradeRefusedError(Exception):
    """The upgrade is answered with ``status`` and the connection is not opened."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def identity_from_path(path: str) -> str:
    """``/ocpp/{id}``, ``/{id}``, with or without a trailing slash; percent-decoded."""
    path = path.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "ocpp":
        raw = parts[2]
    elif len(parts) == 2 and parts[1] != "ocpp":  # "/ocpp/" is the endpoint, not a station
        raw = parts[1]
    else:
        raise UpgradeRefusedError(404, f"no station identity in path {path[:80]!r}")
    identity = unquote(raw, errors="strict")
    if not identity or any(ord(c) < 0x20 for c in identity):
        raise UpgradeRefusedError(404, "empty or unprintable station identity")
    return identity


def session_key(identity: str, version: str) -> str:
    """The identity as sessions and events know it (validated for the version)."""
    if version == "1.6":
        if len(identity) > MAX_16_IDENTITY:
            raise UpgradeRefusedError(400, "station identity longer than 255 characters")
        return identity
    if not _IDENTIFIER_STRING.fullmatch(identity):
        raise UpgradeRefusedError(
            400, "2.x identities are identifierString (no colon) of at most 48 characters"
        )
    return identity.lower()


def choose_subprotocol(header: str | None, supported: list[str]) -> str:
    """The station's first offered subprotocol that we support; none → HTTP 400 (the OCTT
    TC_B_58 reading; reliability.md §1.6)."""
    offered = [t.strip() for t in (header or "").split(",") if t.strip()]
    chosen = negotiate_subprotocol(offered, supported)
    if chosen is None:
        raise UpgradeRefusedError(400, f"no supported OCPP subprotocol in {offered!r}")
    return chosen
