"""One stream message → rows for every table. Pure and deterministic: the same message (same
stream sequence) always gives the same rows, which is what makes redelivery and replay safe.

An event that cannot be folded becomes a ``poison_events`` row (its ``events`` row is still
written: the raw store keeps everything); a message that is not events at all becomes one poison
row with ``idx = WHOLE_MESSAGE``. Nothing here raises for bad input.
"""

from __future__ import annotations

from typing import Any

import msgspec

from csms.domain.events import FrameEvent
from streams import envelope
from streams.projections import stations, transactions
from streams.projections.meter import Where
from streams.projections.rows import WHOLE_MESSAGE, Row, Rows

_CALL, _RESULT = 2, 3
_STATION_KINDS = frozenset({"frame", "connected", "disconnected"})
"""Kinds that say the station was there (a refused ``security`` attempt does not)."""


def fold_message(
    stream_seq: int, subject: str, data: bytes, now_ms: int, into: Rows | None = None
) -> Rows:
    """All rows of one stream message (appended to ``into``, the batch's rows, if given).
    ``now_ms`` is the poison rows' ``recorded_at``: the projector passes the message's stream
    time, so a replay writes the very same rows."""
    rows = Rows() if into is None else into
    try:
        events = envelope.decode_many(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        rows.add("poison_events", _poison(stream_seq, WHOLE_MESSAGE, subject, err, data, now_ms))
        return rows
    answers = _start_answers(events)
    calls = {
        _corr(e)
        for e in events
        if e.direction == "in" and e.message_type == _CALL and e.action == "StartTransaction"
    }
    seen: dict[str, int] = {}
    for idx, event in enumerate(events):
        rows.add("events", _event_row(stream_seq, idx, event))
        if event.kind in _STATION_KINDS:
            seen[event.station_id] = max(seen.get(event.station_id, 0), event.received_at_ns)
        try:
            _fold_event(rows, stream_seq, idx, event, answers, calls)
        except Exception as err:  # noqa: BLE001 (poison: recorded and skipped, never blocks)
            rows.add(
                "poison_events",
                _poison(stream_seq, idx, subject, err, event.raw.encode(), now_ms),
            )
    for station_id, last_ns in seen.items():
        rows.add("station_seen", [station_id, last_ns])
    return rows


def _poison(seq: int, idx: int, subject: str, err: Exception, data: bytes, now_ms: int) -> Row:
    text = data.decode(errors="replace")[:65536]
    return [seq, idx, subject, f"{type(err).__name__}: {err}"[:2000], text, now_ms]


def _event_row(stream_seq: int, idx: int, e: FrameEvent) -> Row:
    return [
        e.station_id,
        e.received_at_ns,
        stream_seq,
        idx,
        e.event_id,
        e.kind,
        e.ocpp_version,
        e.direction,
        e.message_type,
        e.unique_id or "",
        e.action or "",
        e.raw,
        e.node_id,
        e.session_id,
        e.seq,
        e.reason or "",
    ]


def _corr(event: FrameEvent) -> str:
    return f"{event.session_id}/{event.unique_id}"


def _start_answers(events: list[FrameEvent]) -> dict[str, dict[str, Any]]:
    """Our 1.6 StartTransaction CALLRESULTs in this message, by correlation."""
    answers: dict[str, dict[str, Any]] = {}
    for e in events:
        if (
            e.direction == "out"
            and e.message_type == _RESULT
            and e.action == "StartTransaction"
            and e.ocpp_version == "1.6"
        ):
            try:
                frame = msgspec.json.decode(e.raw)
            except msgspec.DecodeError:
                continue  # its own fold records it as poison
            if isinstance(frame, list) and len(frame) >= 3 and isinstance(frame[2], dict):
                answers[_corr(e)] = frame[2]
    return answers


def _payload(event: FrameEvent) -> dict[str, Any]:
    frame = msgspec.json.decode(event.raw)
    if not isinstance(frame, list) or len(frame) < 4 or not isinstance(frame[3], dict):
        raise ValueError("not a CALL frame with a payload object")
    payload: dict[str, Any] = frame[3]
    return payload


def _fold_event(
    rows: Rows,
    seq: int,
    idx: int,
    event: FrameEvent,
    answers: dict[str, dict[str, Any]],
    calls: set[str],
) -> None:
    if event.kind in ("connected", "disconnected"):
        rows.add(
            "station_sessions",
            [
                event.station_id,
                event.session_id,
                event.kind,
                event.received_at_ns,
                event.node_id,
                event.reason or "",
            ],
        )
        return
    if event.kind != "frame" or event.action is None or event.reason is not None:
        return  # refused frames are kept in `events` only
    if event.direction == "out":
        if event.message_type == _RESULT and event.action == "StartTransaction":
            corr = _corr(event)
            if corr in answers and corr not in calls:
                table = rows.tables["transaction_facts"]
                table += transactions.start_id_16(_where(seq, idx, event), answers[corr], corr)
        return
    if event.message_type != _CALL:
        return
    _fold_call(rows, _where(seq, idx, event), event, answers)


def _where(seq: int, idx: int, event: FrameEvent) -> Where:
    return Where(event.station_id, seq, idx, event.received_at_ns // 1_000_000, event.ocpp_version)


def _fold_call(
    rows: Rows, where: Where, event: FrameEvent, answers: dict[str, dict[str, Any]]
) -> None:
    action = event.action
    v16 = event.ocpp_version == "1.6"
    facts = rows.tables["transaction_facts"]
    # MeterValues rows (every sampled value) come from the engine: 007_meter_values_from_events
    if action == "StatusNotification":
        rows.add("status_notifications", stations.status_notification(where, _payload(event)))
    elif action == "BootNotification":
        rows.add("station_boots", stations.boot_notification(where, _payload(event)))
    elif action == "MeterValues":
        if v16:
            facts += transactions.meter_values_16(where, _payload(event))
    elif action == "TransactionEvent" and not v16:
        facts += transactions.transaction_event_2x(where, _payload(event))
    elif action == "StartTransaction" and v16:
        corr = _corr(event)
        answer = answers.get(corr)
        raw_id = None if answer is None else answer.get("transactionId")
        transaction_id = None if raw_id is None else str(raw_id)
        facts += transactions.start_transaction_16(where, _payload(event), transaction_id, corr)
    elif action == "StopTransaction" and v16:
        facts += transactions.stop_transaction_16(where, _payload(event))
