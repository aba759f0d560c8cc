"""What the simulator reports and what the runner keeps: plain msgspec structs, JSON both ways."""

from __future__ import annotations

import msgspec


class Latency(msgspec.Struct, frozen=True):
    """Send → answer of the CALLs answered inside the measured window, in milliseconds."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0


class SimResult(msgspec.Struct, frozen=True):
    """One simulator run (``mode`` = "throughput" or "idle")."""

    mode: str
    stations: int
    connected: int
    booted: int
    rate_limit_per_station: float | None
    duration_s: float
    answered: int
    """CALLRESULTs to MeterValues received inside the window."""
    answered_per_s: float
    latency: Latency
    errors: dict[str, int]
    """Kind → count: connect, boot, callerror, bad_answer, disconnected."""
    sim_cpu: float
    """CPU time of the simulator over the window / window (1.0 = its core was busy)."""
    server_cpu: dict[str, float]
    """Per watched server pid (by name): CPU time over the window / window."""
    cpu_busy: dict[str, float]
    """Per core ("cpu0", "cpu1"): busy time over the window / window, whoever used it."""
    server_rss_kb: dict[str, int] = msgspec.field(default_factory=dict)
    """VmRSS of each watched server process at the end of the window."""


class IdleResult(msgspec.Struct, frozen=True):
    """RSS of the server process (and of its nats-server, for csms) around N idle stations."""

    stations: int
    connected: int
    warm_stations: int
    rss_before_kb: dict[str, int]
    rss_after_kb: dict[str, int]
    errors: dict[str, int]

    def per_connection_bytes(self, name: str) -> float:
        delta = self.rss_after_kb[name] - self.rss_before_kb[name]
        return delta * 1024 / max(self.connected, 1)


class ServerResult(msgspec.Struct):
    name: str
    label: str
    throughput: list[SimResult] = msgspec.field(default_factory=list)
    half_rate: SimResult | None = None
    idle: IdleResult | None = None
    failures: list[str] = msgspec.field(default_factory=list)
    """Scenarios that could not be measured, with the reason."""

    @property
    def max_rate(self) -> float:
        return max((r.answered_per_s for r in self.throughput), default=0.0)


class Plan(msgspec.Struct, frozen=True):
    throughput_stations: list[int]
    duration_s: float
    warmup_s: float
    half_rate_stations: int
    idle_stations: int
    warm_stations: int


class Run(msgspec.Struct):
    started: str
    finished: str
    command: str
    plan: Plan
    environment: dict[str, str]
    servers: list[ServerResult]
