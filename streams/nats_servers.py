"""The one reading of a NATS URL setting: ``nats://a:4222,nats://b:4222`` names a cluster. Pure.

nats-py takes a list of servers (one string with commas is one bad URL); the event writer
takes the same list. Every process connects through this, so a cluster works everywhere.
"""

from __future__ import annotations


def servers(url: str) -> list[str]:
    """The servers of a comma-separated URL setting, in order, blanks dropped."""
    found = [part.strip() for part in url.split(",") if part.strip()]
    if not found:
        raise ValueError("empty NATS URL")
    return found
