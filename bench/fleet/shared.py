"""What every station of one fleet run reads and counts (one event loop, no locks)."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter

from bench.fleet.payloads import V2, V16, dialect
from bench.fleet.scenario import Scenario


class Shared:
    def __init__(self, scenario: Scenario, version: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.scenario = scenario
        self.dialect: V16 | V2 = dialect(version)
        self.started = time.monotonic()
        self.stopping = False
        self.recording = False
        self.changed = asyncio.Event()
        """Set on every first Accepted, completed transaction and answered command (for
        ``Fleet.until``)."""
        self.sent: Counter[bytes] = Counter()
        self.answered: Counter[bytes] = Counter()
        self.callerrors: Counter[bytes] = Counter()
        self.timeouts: Counter[bytes] = Counter()
        self.errors: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.window_answered = 0
        self.latencies_us: array[int] = array("Q")
        self.connected_s: array[float] = array("d")
        """Seconds from the start to each station's first completed handshake."""
        self.accepted_s: array[float] = array("d")
        """Seconds from the start to each station's first Accepted BootNotification."""
        self.online = 0
        self.reconnects = 0
        self.retries = 0
        self.replayed = 0
        self.transactions_started = 0
        self.transactions_completed = 0
        self.bursts: list[list[float]] = []
        """Per clock-aligned burst: [boundary (epoch s), sent, answered, last answer (monotonic s),
        start (monotonic s)]."""

    def first_connected(self) -> None:
        self.connected_s.append(time.monotonic() - self.started)

    def first_accepted(self, _: object) -> None:
        self.accepted_s.append(time.monotonic() - self.started)
        self.changed.set()

    def burst_answered(self, burst: int) -> None:
        record = self.bursts[burst]
        record[2] += 1
        record[3] = time.monotonic()

    def notify(self) -> None:
        self.changed.set()
