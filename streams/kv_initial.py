"""Where the initial values of a key-value watch end.

nats-py's ``KeyValue.watch`` puts a ``None`` marker once the current values are delivered. It
decides to put it first when the consumer's info shows nothing pending and its subscription has
received nothing yet; values the server pushed before that check, and that wait in the
subscription's queue, then arrive after the marker. A reader that stops at the marker sees an
empty bucket (CI once listed no stations: ``GET /api/v1/stations?status=Faulted`` returned
``[]`` for a station the detail endpoint showed). So the end is read from the values
themselves: the value with nothing pending after it (``delta == 0``), or, at the marker, a
consumer that has delivered nothing.

Watches here never ignore deletes: a delete or purge can be the last value, and its ``delta``
is what ends the initial values (callers skip entries whose ``operation`` is set).
"""

from __future__ import annotations

import contextlib
from typing import Any

from nats.js.kv import KeyValue

Entry = KeyValue.Entry


async def ends_initial(watcher: Any, entry: Entry | None) -> bool:
    """Whether this update of ``watcher`` (a ``KeyValue.KeyWatcher``) ends its initial values.
    Call it for every update until it returns True."""
    if entry is not None:
        return not entry.delta
    info = await watcher._sub.consumer_info()  # the watch's own consumer, as kv.keys() reads it
    return not info.delivered.consumer_seq and not info.num_pending


async def current_entries(kv: KeyValue, keys: str = ">", timeout_s: float = 5.0) -> list[Entry]:
    """The current entry of every key matching ``keys``, deletes and purges included (their
    ``operation`` set), read through a watch to the end of its initial values.
    ``TimeoutError`` when the server goes quiet before that."""
    watcher = await kv.watch(keys)
    entries: list[Entry] = []
    try:
        while True:
            entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
            if entry is not None:
                entries.append(entry)
            if await ends_initial(watcher, entry):
                return entries
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def current_keys(kv: KeyValue, keys: str = ">") -> list[str]:
    """The keys that hold a value (not deleted or purged): ``kv.keys()`` without its race, and
    an empty list, not ``NoKeysError``, for an empty bucket."""
    return [e.key for e in await current_entries(kv, keys) if e.operation is None and e.value]
