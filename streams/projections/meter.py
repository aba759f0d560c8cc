"""``meterValue`` arrays (1.6 MeterValues/StopTransaction, 2.x MeterValues/TransactionEvent) →
the energy register readings transactions need. Pure. (The ``meter_values`` rows are exploded
from the raw events inside the engine: ``streams/schema/007_meter_values_from_events.sql``.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.projections.rows import int_column, parse_time_ms
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


def energy_readings(where: Where, meter_values: Any) -> list[Reading]:
    """The unphased Energy.Active.Import.Register values (in Wh) of a ``meterValue`` array:
    what transactions need. The ``meter_values`` rows themselves (one per sampled value) are
    made inside the engine from the raw CALL (schema ``007_meter_values_from_events.sql``),
    so the projector never builds them in Python."""
    readings: list[Reading] = []
    if meter_values is None:
        return readings
    v16 = where.ocpp_version == "1.6"
    for meter_value in meter_values:
        at_ms = 0
        for sampled in meter_value.get("sampledValue") or ():
            if v16:
                # the register's unphased value only (9 of 10 sampled values leave here)
                if (sampled.get("measurand") or ENERGY_REGISTER) != ENERGY_REGISTER:
                    continue
                if sampled.get("phase"):
                    continue
                unit, multiplier = sampled.get("unit") or "Wh", 0
            else:
                measure = sampled.get("unitOfMeasure") or {}
                unit = measure.get("unit") or "Wh"
                # an out-of-range multiplier makes the event poison, whatever the measurand
                multiplier = int_column(measure.get("multiplier"), 8) or 0
                if (sampled.get("measurand") or ENERGY_REGISTER) != ENERGY_REGISTER:
                    continue
                if sampled.get("phase"):
                    continue
            number = to_number(sampled.get("value"))
            base, factor = scale(str(unit), multiplier)
            if number is None or base != "Wh":
                continue
            if not at_ms:
                at_ms = parse_time_ms(meter_value.get("timestamp")) or where.received_ms
            context = str(sampled.get("context") or "Sample.Periodic")
            readings.append(Reading(at_ms, number * factor, role_of(context)))
    return readings
