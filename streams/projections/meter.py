"""``meterValue`` arrays (1.6 MeterValues/StopTransaction, 2.x MeterValues/TransactionEvent) →
``meter_values`` rows and the energy register readings transactions need. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.projections.rows import Row, int_column, parse_time_ms
from streams.projections.units import ENERGY_REGISTER, scale, to_number


@dataclass(frozen=True, slots=True)
class Where:
    """Where an event sits on the stream and whom it is about."""

    station_id: str
    stream_seq: int
    idx: int
    received_ms: int
    ocpp_version: str

    @property
    def version(self) -> int:
        """Row version of a replaced reading: a later delivery wins, deterministically."""
        return self.stream_seq * 1024 + min(self.idx, 1023)


@dataclass(frozen=True, slots=True)
class Reading:
    """An Energy.Active.Import.Register value (Wh) of a transaction."""

    at_ms: int
    energy_wh: float
    role: str
    """begin (context Transaction.Begin), end (Transaction.End) or sample."""


def role_of(context: str) -> str:
    if context == "Transaction.Begin":
        return "begin"
    if context == "Transaction.End":
        return "end"
    return "sample"


def fold_meter_values(
    where: Where,
    meter_values: Any,
    *,
    evse_id: int | None,
    connector_id: int | None,
    transaction_id: str,
) -> tuple[list[Row], list[Reading]]:
    """One row per sampled value; the unphased energy register values as readings."""
    rows: list[Row] = []
    readings: list[Reading] = []
    if meter_values is None:
        return rows, readings
    v16 = where.ocpp_version == "1.6"
    station_id, stream_seq, version = where.station_id, where.stream_seq, where.version
    for meter_value in meter_values:
        at_ms = parse_time_ms(meter_value.get("timestamp")) or where.received_ms
        for sampled in meter_value.get("sampledValue") or ():
            raw = sampled.get("value")
            if v16:
                unit, multiplier = sampled.get("unit") or "Wh", 0
            else:
                measure = sampled.get("unitOfMeasure") or {}
                unit = measure.get("unit") or "Wh"
                multiplier = int_column(measure.get("multiplier"), 8) or 0
            measurand = sampled.get("measurand") or ENERGY_REGISTER
            phase = sampled.get("phase") or ""
            context = sampled.get("context") or "Sample.Periodic"
            number = to_number(raw)
            base, factor = scale(str(unit), multiplier)
            value_base = None if number is None else number * factor
            rows.append(
                [
                    station_id,
                    at_ms,
                    evse_id,
                    connector_id,
                    transaction_id,
                    str(measurand),
                    str(phase),
                    str(sampled.get("location") or "Outlet"),
                    str(context),
                    str(unit),
                    multiplier,
                    raw if isinstance(raw, str) else _number_text(raw),
                    number,
                    base,
                    value_base,
                    stream_seq,
                    version,
                ]
            )
            if (
                value_base is not None
                and measurand == ENERGY_REGISTER
                and not phase
                and base == "Wh"
            ):
                readings.append(Reading(at_ms, value_base, role_of(str(context))))
    return rows, readings


def _number_text(raw: object) -> str:
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
        return str(int(raw))
    return str(raw)
