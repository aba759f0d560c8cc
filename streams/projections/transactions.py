"""Transaction facts: 1.6 StartTransaction/StopTransaction/MeterValues and 2.x TransactionEvent →
``transaction_facts`` rows. Pure.

No state across stream messages: the ``transactions`` view aggregates the facts at query time
(``streams.queries``), which is what makes late, out-of-order and duplicate events, an Ended
without a Started and a Stop for an unknown id harmless. The one correlation the fold does:
a 1.6 StartTransaction gets its transactionId from our CALLRESULT, normally in the same stream
message; otherwise the two facts share ``corr`` and the view joins them.
"""

from __future__ import annotations

from typing import Any

from streams.projections.meter import Reading, Where, energy_readings
from streams.projections.rows import Row, int_column, parse_time_ms


def fact_row(
    where: Where,
    transaction_id: str,
    n: int,
    fact: str,
    at_ms: int,
    *,
    seq_no: int | None = None,
    offline: bool = False,
    evse_id: int | None = None,
    connector_id: int | None = None,
    id_token: str = "",
    meter_wh: float | None = None,
    role: str = "",
    stop_reason: str = "",
    charging_state: str = "",
    corr: str = "",
) -> Row:
    return [
        where.station_id,
        transaction_id,
        where.stream_seq,
        where.idx,
        n,
        fact,
        where.ocpp_version,
        at_ms,
        seq_no,
        1 if offline else 0,
        evse_id,
        connector_id,
        id_token,
        meter_wh,
        role,
        stop_reason,
        charging_state,
        corr,
    ]


def reading_rows(
    where: Where,
    transaction_id: str,
    readings: list[Reading],
    first_n: int,
    evse_id: int | None = None,
    connector_id: int | None = None,
    seq_no: int | None = None,
) -> list[Row]:
    """One fact per energy reading; ``seq_no``: the 2.x event's, which orders readings with
    the same timestamp. The rows :func:`fact_row` would make, written out (one per 1.6
    MeterValues: a keyword call per row was a tenth of the fold)."""
    station_id, seq, idx, version = (
        where.station_id,
        where.stream_seq,
        where.idx,
        where.ocpp_version,
    )
    return [
        [
            station_id,
            transaction_id,
            seq,
            idx,
            first_n + i,
            "reading",
            version,
            r.at_ms,
            seq_no,
            0,
            evse_id,
            connector_id,
            "",
            r.energy_wh,
            r.role,
            "",
            "",
            "",
        ]
        for i, r in enumerate(readings)
    ]


def start_transaction_16(
    where: Where, payload: dict[str, Any], transaction_id: str | None, corr: str
) -> list[Row]:
    """The start fact; ``transaction_id`` None when our answer is not in this message."""
    at_ms = parse_time_ms(payload.get("timestamp")) or where.received_ms
    return [
        fact_row(
            where,
            transaction_id or "",
            0,
            "start",
            at_ms,
            connector_id=int_column(payload.get("connectorId")),
            id_token=str(payload.get("idTag") or ""),
            meter_wh=float(payload["meterStart"]),
            role="begin",
            corr="" if transaction_id else corr,
        )
    ]


def start_id_16(where: Where, result: dict[str, Any], corr: str) -> list[Row]:
    """Our StartTransaction CALLRESULT, stored apart from its CALL: the id for ``corr``."""
    transaction_id = result.get("transactionId")
    if transaction_id is None:
        return []
    return [fact_row(where, str(transaction_id), 0, "start_id", where.received_ms, corr=corr)]


def stop_transaction_16(where: Where, payload: dict[str, Any]) -> list[Row]:
    """The stop fact and the energy readings of ``transactionData``."""
    transaction_id = str(payload["transactionId"])
    at_ms = parse_time_ms(payload.get("timestamp")) or where.received_ms
    facts = [
        fact_row(
            where,
            transaction_id,
            0,
            "stop",
            at_ms,
            meter_wh=float(payload["meterStop"]),
            role="end",
            stop_reason=str(payload.get("reason") or "Local"),
        )
    ]
    readings = energy_readings(where, payload.get("transactionData"))
    facts += reading_rows(where, transaction_id, readings, first_n=1)
    return facts


def meter_values_16(where: Where, payload: dict[str, Any]) -> list[Row]:
    """The energy readings of a 1.6 MeterValues that names its transaction."""
    connector_id = int_column(payload.get("connectorId"))
    raw_id = payload.get("transactionId")
    if raw_id is None:
        return []
    transaction_id = str(raw_id)
    readings = energy_readings(where, payload.get("meterValue"))
    return reading_rows(where, transaction_id, readings, 0, connector_id=connector_id)


_EVENT_FACT = {"Started": "started", "Updated": "updated", "Ended": "ended"}


def transaction_event_2x(where: Where, payload: dict[str, Any]) -> list[Row]:
    """One fact for the event (seqNo, offline, evse, token, state, stop reason) and one per
    energy register reading it carries."""
    info = payload["transactionInfo"]
    transaction_id = str(info["transactionId"])
    fact = _EVENT_FACT.get(str(payload.get("eventType")), "updated")
    at_ms = parse_time_ms(payload.get("timestamp")) or where.received_ms
    evse = payload.get("evse") or {}
    evse_id = int_column(evse.get("id"))
    connector_id = int_column(evse.get("connectorId"))
    token = payload.get("idToken") or {}
    seq_no = int_column(payload.get("seqNo"), 64)
    stop_reason = str(info.get("stoppedReason") or ("Local" if fact == "ended" else ""))
    facts = [
        fact_row(
            where,
            transaction_id,
            0,
            fact,
            at_ms,
            seq_no=seq_no,
            offline=bool(payload.get("offline")),
            evse_id=evse_id,
            connector_id=connector_id,
            id_token=str(token.get("idToken") or ""),
            stop_reason=stop_reason,
            charging_state=str(info.get("chargingState") or ""),
        )
    ]
    readings = energy_readings(where, payload.get("meterValue"))
    facts += reading_rows(where, transaction_id, readings, 1, evse_id, connector_id, seq_no=seq_no)
    return facts
