"""The projector's batch fold with the compiled fast path (``csms._core.fold_exchanges``).

The gateway writes most of the stream as version 2 exchanges (a station's CALL and our answer in
one message), and most of those are MeterValues. The compiled fold turns each such message into
its ``events`` rows and (1.6) energy-reading ``transaction_facts`` rows, written straight into
ClickHouse ``Native`` blocks: no Python object per value, no encoding by the client. It declines
every message it is not certain about (another envelope, an action with state or correlation,
a field of an unexpected type or range, a timestamp or number in an unusual form, a payload that
would be poison), and those are folded by :func:`streams.projections.projector.fold_batch`, the
reference implementation. The rows are the same either way (tests/unit/streams/
test_projections_compiled.py compares them on generated messages), and so are their keys:
redelivery and replay stay exactly-once in effect.
"""

from __future__ import annotations

import logging
from typing import Protocol

from csms import _core  # noqa: TID251 (the compiled fold; streams may not import csms.protocol)
from streams.projections.rows import Message, NativeBlock, Row, Rows

log = logging.getLogger(__name__)

EVENT_COLUMNS: tuple[str, ...] = tuple(_core.FOLD_EVENT_COLUMNS)
FACT_COLUMNS: tuple[str, ...] = tuple(_core.FOLD_FACT_COLUMNS)
"""The blocks' columns (a test holds them equal to ``rows.COLUMNS``)."""


class FoldPython(Protocol):
    def __call__(self, messages: list[Message], *, extra_seen: list[Row] | None = None) -> Rows: ...


def fold_batch_compiled(messages: list[Message], fold_python: FoldPython) -> Rows:
    """Fold a batch: the compiled fold where it accepts a message, ``fold_python`` (the
    projector's ``fold_batch``, which also merges ``station_seen``) for the rest. The Python
    rows of ``events`` and ``transaction_facts`` join the compiled ones in the same block when
    they encode (one insert per table: each has a fixed cost of several ms in the engine);
    rows that do not stay rows, for the insert's halving and poison rows. Each block keeps the
    batch's messages: folded again in Python, they give its rows."""
    try:
        declined, events, n_events, facts, n_facts, seen = _core.fold_exchanges(messages)
    except Exception:  # a bug there must not stop the stream: all of it in Python
        log.exception("projector: the compiled fold failed; folding the batch in Python")
        return fold_python(messages)
    rest = [messages[i] for i in declined]
    rows = fold_python(rest, extra_seen=[[station, ns] for station, ns in seen])
    every = tuple(messages)
    for table, data, count in (("events", events, n_events), ("transaction_facts", facts, n_facts)):
        if not count:
            continue
        python_rows = rows.tables[table]
        if python_rows:
            try:
                data = _core.native_block(table, python_rows) + data
            except (TypeError, ValueError, OverflowError):
                pass  # inserted as rows, apart
            else:
                count += len(python_rows)
                rows.tables[table] = []
        rows.native.append(NativeBlock(table, data, count, every))
    return rows
