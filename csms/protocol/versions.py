"""Subprotocol negotiation (OCPP-J 1.6 §3.1.2; 2.x Part 4 §3.1.2): pure functions."""

from __future__ import annotations

from collections.abc import Iterable

SUBPROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}


def version_of_subprotocol(token: str) -> str | None:
    """The version label of a subprotocol token, or None if we do not speak it."""
    return SUBPROTOCOLS.get(token.strip())


def negotiate_subprotocol(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The first subprotocol of the station's list (its order of preference) that we support.

    ``supported`` holds version labels ("1.6", ...). Tokens are compared exactly, as the
    specification lists them; a version in the URL never decides (2.0.1 errata §4.2).
    """
    allowed = set(supported)
    for token in offered:
        version = version_of_subprotocol(token)
        if version is not None and version in allowed:
            return token.strip()
    return None
