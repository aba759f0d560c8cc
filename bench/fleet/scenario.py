"""Scenarios are data: ``bench/scenarios/<name>.toml``, decoded into ``Scenario`` (unknown keys
are an error). Ranges ``[low, high]`` are drawn uniformly per station and per occurrence."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    description: str
    status: str = "ready"
    """"stub": described but not runnable yet (``needs`` says what is missing)."""
    needs: str = ""
    duration_s: float = 30.0
    """Run length after the warm-up (``--duration`` overrides)."""
    warmup_s: float = 0.0
    """Traffic before the measured window (latency and rates count only inside it)."""
    connect_concurrency: int = 1000
    """Handshakes in flight at once while the fleet connects (0: all at once)."""
    boot_only: bool = False
    """Boot, send StatusNotification, then stay idle (heartbeats only): the boot storm. The run
    ends when every station is Accepted (or after ``duration_s``)."""
    heartbeat_interval_s: float = 0.0
    """0: the interval of the CSMS's BootNotification answer."""
    charging: bool = True
    authorize: bool = True
    """Authorize before each session; false: free vending (start at once, and the answers'
    content is never needed, so servers that answer ``{}``, like the echo ceiling, work too)."""
    start_at_once: bool = False
    """Plug in right after boot; otherwise as if the fleet had been running: a share of
    mean session / (mean session + mean idle) starts within ``first_sessions_spread_s``, the
    rest after an idle time."""
    start_spread_s: float = 0.0
    """With ``start_at_once``: sessions start within this many seconds after the boot (0: at
    once), so that a benchmark of something else is not a StartTransaction storm first."""
    first_sessions_spread_s: float = 60.0
    """Their StartTransaction / TransactionEvent Started are spread over this many seconds
    (a fleet found mid-session has no start burst; 1.6 still needs a transaction id)."""
    idle_s: tuple[float, float] = (60.0, 600.0)
    """Between sessions."""
    session_s: tuple[float, float] = (900.0, 3600.0)
    """Length of a charging session; (0, 0): never ends during the run."""
    meter_interval_s: tuple[float, float] = (10.0, 60.0)
    """Periodic meter values while charging; (0, 0): next one as soon as the last is answered."""
    clock_aligned_interval_s: float = 0.0
    """> 0: every charging station also sends Sample.Clock values at each multiple of it (UTC),
    all in the same second."""
    call_timeout_s: float = 30.0
    """An unanswered CALL is given up after this; a transaction message is then sent again."""
    backoff_s: tuple[float, float] = (1.0, 60.0)
    """Reconnect back-off: first and largest delay, doubling, with jitter (50-100 %)."""
    offline_queue: int = 1000
    """Most transaction messages kept while disconnected (oldest meter values dropped first)."""


def path_of(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml":
        return candidate
    return SCENARIOS / f"{name}.toml"


def names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def load(name: str, overrides: list[str] | None = None) -> Scenario:
    """A scenario by name (``bench/scenarios/<name>.toml``) or by path to a .toml file, with
    ``key=value`` overrides (values in TOML syntax: ``authorize=false``, ``idle_s=[1, 2]``)."""
    path = path_of(name)
    if not path.exists():
        raise ValueError(f"no scenario {name!r}: known are {', '.join(names())}")
    data = tomllib.loads(path.read_text())
    for override in overrides or []:
        key, sep, value = override.partition("=")
        if not sep:
            raise ValueError(f"override {override!r}: expected key=value")
        try:
            data[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            data[key.strip()] = value
    return msgspec.convert(data, Scenario)
