"""What the abuse benchmark keeps: plain msgspec structs, JSON both ways."""

from __future__ import annotations

import msgspec

from bench.fleet.model import Percentiles
from bench.load.model import Report


class Spread(msgspec.Struct, frozen=True):
    """Seconds (or milliseconds, as named) of one kind of event: how many, median, max."""

    count: int = 0
    median: float = 0.0
    max: float = 0.0


def spread(values: list[float]) -> Spread:
    if not values:
        return Spread()
    ordered = sorted(values)
    return Spread(len(ordered), round(ordered[len(ordered) // 2], 4), round(ordered[-1], 4))


class Observed(msgspec.Struct, kw_only=True):
    """What one attacker process saw: the limit's effect from the attacker's side."""

    attack: str
    source: str
    """The attacker's local address (the legitimate load comes from another one)."""
    duration_s: float
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    """E.g. ``closed 1008``, ``refused at once``, ``tls refused``, ``connections``."""
    times_s: dict[str, Spread] = msgspec.field(default_factory=dict)
    """E.g. ``until close`` (from the attack's first byte on that connection)."""
    note: str = ""


class Window(msgspec.Struct, kw_only=True):
    """The legitimate load and the server's cost over one window."""

    seconds: float
    answered: int
    latency: Percentiles
    """The legitimate stations' meter values: send until answer, ms."""
    errors: dict[str, int]
    """The legitimate stations' errors in the window (CALLERROR, disconnected...)."""
    probe_connect: Percentiles
    """Fresh legitimate stations connecting meanwhile: TCP connect + WebSocket upgrade, ms."""
    probe_boot: Percentiles
    """... and their BootNotification's answer, ms."""
    probe_failures: int
    server_cpu: dict[str, float]
    """CPU of the server's processes over the window / window (1.0 = one core)."""
    rss_start_kb: dict[str, int]
    rss_max_kb: dict[str, int]


class AttackRun(msgspec.Struct, kw_only=True):
    attack: str
    baseline: Window | None = None
    during: Window | None = None
    observed: Observed | None = None
    server_log: dict[str, int] = msgspec.field(default_factory=dict)
    """Lines of csms's log written during the attack window, by kind (see ``LOG_MARKS``)."""
    after: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    """Right after the attack, fresh plain connections per source address: how many were
    upgraded, refused, or hung (the upgrade request sent, no answer within the timeout)."""
    failure: str = ""


class AbuseReport(Report):
    stations: int
    rate_per_station: float
    version: str
    settle_s: float
    baseline_s: float
    attack_s: float
    probe_interval_s: float
    topology: str
    connected: int = 0
    runs: list[AttackRun] = msgspec.field(default_factory=list)
