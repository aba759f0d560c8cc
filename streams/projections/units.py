"""Sampled values → base units. Pure.

A value is stored as given (``raw_value``, ``unit``, ``multiplier``) and in its base unit:
``value_base = value * 10**multiplier * prefix`` where the prefix is 1000 for the ``k`` units
(kWh → Wh, kW → W, kvarh → varh, kVA → VA, kvar → var). 1.6 has no multiplier and spells
Celsius "Celcius" in its enum; both spellings become ``Celsius``. A unit we do not know is kept
as its own base unit (factor 1), never an error.
"""

from __future__ import annotations

import functools
from typing import Final

ENERGY_REGISTER: Final = "Energy.Active.Import.Register"

_UNITS: Final[dict[str, tuple[str, float]]] = {
    "Wh": ("Wh", 1.0),
    "kWh": ("Wh", 1000.0),
    "varh": ("varh", 1.0),
    "kvarh": ("varh", 1000.0),
    "W": ("W", 1.0),
    "kW": ("W", 1000.0),
    "VA": ("VA", 1.0),
    "kVA": ("VA", 1000.0),
    "var": ("var", 1.0),
    "kvar": ("var", 1000.0),
    "A": ("A", 1.0),
    "V": ("V", 1.0),
    "K": ("K", 1.0),
    "Celcius": ("Celsius", 1.0),
    "Celsius": ("Celsius", 1.0),
    "Fahrenheit": ("Fahrenheit", 1.0),
    "Percent": ("Percent", 1.0),
    "%": ("Percent", 1.0),
}


def base_unit(unit: str) -> tuple[str, float]:
    """The base unit of ``unit`` and the factor to it."""
    return _UNITS.get(unit, (unit, 1.0))


@functools.lru_cache(maxsize=1024)
def scale(unit: str, multiplier: int) -> tuple[str, float]:
    """(base unit, factor from a raw value in ``unit`` with ``multiplier`` to it); cached:
    a station sends the same few units over and over."""
    base, factor = base_unit(unit)
    return base, factor * (10.0**multiplier)


def to_number(raw: object) -> float | None:
    """A sampled value as a number (1.6 sends strings, 2.x numbers; SignedData → None)."""
    if isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    return None


def normalise(value: float | None, unit: str, multiplier: int) -> tuple[str, float | None]:
    """(base unit, value in it)."""
    base, factor = base_unit(unit)
    if value is None:
        return base, None
    return base, value * factor * (10.0**multiplier)
