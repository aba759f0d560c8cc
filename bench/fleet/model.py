"""What one fleet run reports: a msgspec struct, printed as one JSON line by ``bench.fleet``."""

from __future__ import annotations

import msgspec


class Percentiles(msgspec.Struct, frozen=True):
    """Send → answer, milliseconds."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0


def percentiles(values_us: list[int]) -> Percentiles:
    values = sorted(values_us)
    if not values:
        return Percentiles()

    def at(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] / 1000

    return Percentiles(len(values), at(0.5), at(0.9), at(0.99), at(0.999), values[-1] / 1000)


class Burst(msgspec.Struct, frozen=True):
    """One clock-aligned burst: every charging station's Sample.Clock values in one second."""

    at: str
    sent: int
    answered: int
    all_answered_s: float
    """From the boundary until the last of them was answered (or until the run ended)."""


class BootStorm(msgspec.Struct, frozen=True):
    """Connect + boot of the whole fleet at once, from the first connect attempt."""

    connected: int
    accepted: int
    all_connected_s: float | None
    """Until the last station's WebSocket handshake completed (None: not all did)."""
    all_accepted_s: float | None
    """Until the last station's first BootNotification was answered Accepted."""
    handshakes_per_s: float
    """Connected stations / time until the last handshake (or the run's length)."""
    accepted_p50_s: float
    accepted_p99_s: float


class FleetResult(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    version: str
    url: str
    stations: int
    duration_s: float
    """The measured window."""
    boot: BootStorm
    sent: dict[str, int]
    answered: dict[str, int]
    """Station CALLs answered with a CALLRESULT, per action, over the whole run."""
    callerrors: dict[str, int]
    timeouts: dict[str, int]
    errors: dict[str, int]
    """connect, subprotocol, bad_answer, disconnected (by the server), dropped_offline, ..."""
    window_answered: int
    answered_per_s: float
    """CALLRESULTs inside the measured window / window."""
    latency: Percentiles
    transactions_started: int
    transactions_completed: int
    reconnects: int
    retries: int
    """Transaction messages sent again (timed out, or unanswered when the connection dropped)."""
    replayed: int
    """Transaction messages queued while offline and sent after reconnecting."""
    commands: dict[str, int]
    """CSMS-initiated CALLs answered, per action."""
    bursts: list[Burst] = msgspec.field(default_factory=list)
    sim_cpu: float = 0.0
    """Simulator CPU time / wall time of the whole run (1.0 = one core busy)."""
    server_cpu: dict[str, float] = msgspec.field(default_factory=dict)
    """Per watched server process (``--watch NAME=PID``): CPU time over the window / window."""
    server_rss_kb: dict[str, int] = msgspec.field(default_factory=dict)
    """Per watched server process: VmRSS at the end of the window."""


class SimResult(msgspec.Struct, frozen=True):
    """One run of the throughput simulator (``bench.fleet.throughput``; ``mode`` = "throughput"
    or "idle")."""

    mode: str
    stations: int
    connected: int
    booted: int
    rate_limit_per_station: float | None
    duration_s: float
    answered: int
    """CALLRESULTs to meter values (1.6 MeterValues, 2.x TransactionEvent) inside the window."""
    answered_per_s: float
    latency: Percentiles
    errors: dict[str, int]
    """Kind → count: connect, boot, start, callerror, bad_answer, disconnected."""
    sim_cpu: float
    """CPU time of the simulator over the window / window (1.0 = its core was busy)."""
    server_cpu: dict[str, float]
    """Per watched server pid (by name): CPU time over the window / window."""
    cpu_busy: dict[str, float]
    """Per core ("cpu0", "cpu1"): busy time over the window / window, whoever used it."""
    server_rss_kb: dict[str, int] = msgspec.field(default_factory=dict)
    """VmRSS of each watched server process at the end of the window."""
    version: str = "1.6"
    """The OCPP version the stations spoke."""

    @property
    def sim_us_per_call(self) -> float:
        """The simulator's own CPU cost per answered call, microseconds (send + read)."""
        return self.sim_cpu * 1e6 / self.answered_per_s if self.answered_per_s else 0.0
