"""What is suspicious about a CALL we answer normally: the flag goes into the CALL's event.

reliability.md §5.3: a MeterValues with an absurd value is acknowledged (M30), and so is a 1.6
StopTransaction for a transaction we never started (M31); refusing either makes stations retry
forever. The answer stays the spec's; the stored event carries the flag in ``reason``, so the
projections and an operator (``GET /api/v1/events``) can tell them apart.

Pure functions over a parsed payload; the gateway calls :func:`meter_flag` only when the raw
frame may hold a negative value at all (``csms.protocol.may_hold_negative``, a byte scan in the
core), so a normal frame is never parsed for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

NEGATIVE_ENERGY: Final = "M30 negative energy register"
UNKNOWN_TRANSACTION: Final = "M31 unknown transactionId"

_ENERGY_PREFIX: Final = "Energy."
_DEFAULT_MEASURAND: Final = "Energy.Active.Import.Register"  # when ``measurand`` is absent

# Where each action carries meter values and other energy readings (all three versions).
_METER_VALUE_LISTS: Final[dict[str, tuple[str, ...]]] = {
    "MeterValues": ("meterValue",),
    "TransactionEvent": ("meterValue",),
    "StopTransaction": ("transactionData",),
}
_WH_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "StartTransaction": ("meterStart",),
    "StopTransaction": ("meterStop",),
}

CHECKED_ACTIONS: Final = frozenset(_METER_VALUE_LISTS) | frozenset(_WH_FIELDS)
"""Actions :func:`meter_flag` looks at; the gateway skips the byte search for the others."""


def meter_flag(action: str, payload: dict[str, Any]) -> str | None:
    """M30: an energy register reading below zero (a meter never counts backwards from 0).

    Other measurands may be negative (exported power, current direction): not flagged."""
    for name in _WH_FIELDS.get(action, ()):
        if _negative(payload.get(name)):
            return f"{NEGATIVE_ENERGY}: {name} {payload[name]}"
    for name in _METER_VALUE_LISTS.get(action, ()):
        for sampled in _sampled_values(payload.get(name)):
            measurand = sampled.get("measurand") or _DEFAULT_MEASURAND
            if measurand.startswith(_ENERGY_PREFIX) and _negative(sampled.get("value")):
                return f"{NEGATIVE_ENERGY}: {measurand} {sampled['value']}"
    return None


def _sampled_values(meter_values: object) -> Iterable[dict[str, Any]]:
    if not isinstance(meter_values, list):
        return
    for meter_value in meter_values:
        if isinstance(meter_value, dict):
            sampled = meter_value.get("sampledValue")
            if isinstance(sampled, list):
                yield from (item for item in sampled if isinstance(item, dict))


def _negative(value: object) -> bool:
    """A number below zero, or a 1.6 string value that reads as one."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value < 0
    if isinstance(value, str) and value.startswith("-"):
        try:
            return float(value) < 0
        except ValueError:
            return False
    return False
