"""The one subject grammar of the event stream (pure).

Events of station S go to ``csms.evt.v1.<token(S)>``: one subject per station keeps each
station's events in order. ``token`` maps any station identity to a single subject token
(never ``.``, ``*``, ``>``, white space or control characters) and back.
"""

from __future__ import annotations

import functools
from typing import Final

STREAM: Final = "CSMS_EVENTS"
PREFIX: Final = "csms.evt.v1"
ALL_EVENTS: Final = f"{PREFIX}.>"

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def token(station_id: str) -> str:
    """Encode a station identity as one subject token: safe ASCII kept, the rest ``=XX`` per
    UTF-8 byte. Reversible; ``=`` itself is escaped."""
    if not station_id:
        raise ValueError("empty station identity")
    out: list[str] = []
    for char in station_id:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"={byte:02X}" for byte in char.encode())
    return "".join(out)


def station_of(token_text: str) -> str:
    """Inverse of :func:`token`."""
    data = bytearray()
    i = 0
    while i < len(token_text):
        if token_text[i] == "=":
            data.append(int(token_text[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(token_text[i].encode())
            i += 1
    return data.decode()


@functools.lru_cache(maxsize=65536)
def subject(station_id: str) -> str:
    """The subject of a station's events (cached: computed once per station, not per event)."""
    return f"{PREFIX}.{token(station_id)}"
