"""What the runner keeps (the simulator's ``SimResult`` is defined beside it, in
``bench.fleet.model``): plain msgspec structs, JSON both ways."""

from __future__ import annotations

import msgspec

from bench.fleet.model import Percentiles as Latency
from bench.fleet.model import SimResult

HEADLINE_VERSION = "1.6"
"""1.6 MeterValues: the row the issue's bar is read from (and comparable with earlier runs)."""

__all__ = [
    "HEADLINE_VERSION",
    "Fill",
    "IdleResult",
    "Latency",
    "Plan",
    "Report",
    "Run",
    "ServerResult",
    "SimResult",
]


class Report(msgspec.Struct, kw_only=True):
    """What every runner's result carries (``report.finish_run`` fills in ``finished`` and the
    end load average)."""

    started: str
    finished: str = ""
    command: str
    environment: dict[str, str]


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

    def gateway_bytes(self, server: str) -> float:
        """Per connection, all of ``server``'s own processes (csms ``--workers``: each
        gateway process, ``csms-w1``...; not its nats-server)."""
        names = [n for n in self.rss_after_kb if n == server or n.startswith(f"{server}-w")]
        return sum(self.per_connection_bytes(n) for n in names)


class Fill(msgspec.Struct, frozen=True):
    """A page-cache fill before a sustained window (``bench.load.host_memory``)."""

    bytes: int
    seconds: float
    free_before: int
    """MemFree before the fill (bytes)."""
    limited_by: str
    """``memory`` (free memory minus what is left free) or ``disk`` (free disk minus the
    streams' reserve)."""


class ServerResult(msgspec.Struct):
    name: str
    label: str
    throughput: list[SimResult] = msgspec.field(default_factory=list)
    half_rate: SimResult | None = None
    sustained: SimResult | None = None
    """The headline rate over a window that starts minutes into the run (``Plan.sustained_*``):
    what the server keeps up, its storage's steady state included. With ``Plan.fill_memory``
    it runs after ``fill``, the machine's memory in use as on a server that has run a while."""
    sustained_as_found: SimResult | None = None
    """With ``Plan.fill_memory``, for a server that stores: the same window before the fill,
    on the memory as the machine had it (free pages the host backs again on first touch)."""
    fill: Fill | None = None
    idle: IdleResult | None = None
    idle_group: IdleResult | None = None
    """csms with ``Plan.idle_group_workers`` gateway processes at ``Plan.idle_group_stations``."""
    failures: list[str] = msgspec.field(default_factory=list)
    """Scenarios that could not be measured, with the reason."""

    @property
    def max_rate(self) -> float:
        """The headline: best 1.6 MeterValues rate."""
        return self.max_rate_of(HEADLINE_VERSION)

    @property
    def sustained_rate(self) -> float:
        """The bar's rate: the sustained run's when measured, else the best short window's."""
        return self.sustained.answered_per_s if self.sustained is not None else self.max_rate

    @property
    def best_rate(self) -> float:
        """The highest 1.6 MeterValues rate of any window, short or sustained: the half-rate
        scenario runs at half of it (the issue: half the maximum sustained rate)."""
        windows = (self.sustained, self.sustained_as_found)
        return max(self.max_rate, *(w.answered_per_s for w in windows if w is not None))

    def max_rate_of(self, version: str) -> float:
        return max((r.answered_per_s for r in self.throughput if r.version == version), default=0.0)


class Plan(msgspec.Struct, frozen=True):
    throughput_stations: list[int]
    duration_s: float
    warmup_s: float
    half_rate_stations: int
    idle_stations: int
    warm_stations: int
    versions: list[str] = msgspec.field(default_factory=lambda: [HEADLINE_VERSION])
    """OCPP versions of the throughput rows (idle memory and half rate: the headline's only)."""
    sustained_warmup_s: float = 0.0
    """Seconds at full speed before the sustained window (0: no sustained run). csms's rate
    falls during its first minutes as nats-server's stream and duplicate table grow (on this VM
    mostly the first write to memory the host took back: ``bench.load.host_memory``); a short
    window after a short warm-up misses that."""
    sustained_s: float = 0.0
    fill_memory: bool = False
    """Before a storing server's sustained window, fill the free memory with page cache
    (``bench.load.host_memory``) and run the window twice: as found, then filled."""
    expiry_wait_s: float = 0.0
    """After the memory-as-found window (and the fill), wait until this long after that window
    ended before the next one: csms's nats-server drops that window's millions of
    ``Nats-Msg-Id``s from its duplicate table as they expire (120 s), and collects its heap; a
    window inside that time measures the clean-up (session 9: 10,381/s against 43,767/s)."""
    idle_group_stations: int = 0
    """csms only, first: idle memory again at this N with ``idle_group_workers`` gateway
    processes (``csms serve --workers``) and as many simulator processes. The open-files limit
    is per process: here one process cannot hold 20,000 sockets, a group can. 0: not run."""
    idle_group_workers: int = 2


class Run(Report):
    plan: Plan
    servers: list[ServerResult]
    nats_cpu: int = 0
    """The CPU csms's nats-server was pinned to (0: with the servers; 1: with the simulator)."""
