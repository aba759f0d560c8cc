"""A fleet: N ``SimStation``s, each kept connected by its own task (reconnecting with exponential
back-off and jitter), a one-second ticker (call timeouts, progress line) and, if the scenario asks,
the clock-aligned bursts.

    async with Fleet(url, scenario, "2.0.1", 100) as fleet:
        await fleet.until(lambda f: f.shared.transactions_completed >= 10, timeout_s=30)
    print(fleet.result())
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import random
import socket
import ssl
import sys
import time
from collections.abc import Callable
from types import TracebackType

import picows

from bench.fleet.model import BootStorm, Burst, FleetResult, percentiles
from bench.fleet.proc import cpu_seconds, rss_kb
from bench.fleet.scenario import Scenario
from bench.fleet.shared import Shared
from bench.fleet.station import SimStation

HANDSHAKE_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
BOOT_LIMIT_S = 120.0
SOURCE_BASE = ipaddress.IPv4Address("127.0.0.2")


class Fleet:
    def __init__(
        self,
        url: str,
        scenario: Scenario,
        version: str,
        stations: int,
        prefix: str = "sim",
        progress: bool = False,
        watch: dict[str, int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        password: str | None = None,
        source_addresses: int = 0,
    ) -> None:
        self.url = url.rstrip("/")
        self.scenario = scenario
        self.version = version
        self.count = stations
        self.prefix = prefix
        self.progress = progress
        self.ssl_context = ssl_context
        """For wss:// URLs (None: picows's default, verifying against the system CAs)."""
        self.password = password
        """HTTP Basic auth (security profiles 1 and 2): every station uses this password."""
        self.source_addresses = source_addresses
        """> 0: station i connects from 127.0.0.2 + (i mod N) (loopback URLs): many peers, as in
        the field, so that per-address limits of the server see realistic addresses."""
        self.watch = watch or {}
        """Server processes (name → pid) whose CPU share and RSS over the window are reported."""
        self._watch_cpu: dict[str, float] = {}
        self._watched: tuple[dict[str, float], dict[str, int]] = ({}, {})
        self.stations: list[SimStation] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._shared: Shared | None = None
        self._gate: asyncio.Semaphore | None = None
        self._cpu_start = 0.0
        self._wall_start = 0.0
        self._window: tuple[float, float] = (0.0, 0.0)

    @property
    def shared(self) -> Shared:
        assert self._shared is not None, "the fleet is not started"
        return self._shared

    def station_ids(self) -> list[str]:
        width = len(str(max(self.count - 1, 0)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(self.count)]

    # -- life cycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._shared = shared = Shared(self.scenario, self.version)
        self._cpu_start, self._wall_start = time.process_time(), time.monotonic()
        concurrency = self.scenario.connect_concurrency
        self._gate = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        self.stations = [SimStation(i, shared) for i in self.station_ids()]
        self._tasks = [
            asyncio.create_task(self._live(s, index)) for index, s in enumerate(self.stations)
        ]
        self._tasks.append(asyncio.create_task(self._tick()))
        if self.scenario.clock_aligned_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._bursts()))

    async def stop(self) -> None:
        shared = self.shared
        if shared.stopping:
            return
        shared.stopping = True
        self._stop.set()
        for station in self.stations:
            station.close()
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.progress:
            print(file=sys.stderr)

    async def run(self, duration_s: float | None = None) -> FleetResult:
        """Start, wait until every station is Accepted (at most ``BOOT_LIMIT_S``), warm up,
        measure for ``duration_s`` (default: the scenario's), stop. A boot-only scenario is
        measured from the start and ends when every station is Accepted."""
        await self.start()
        try:
            if not self.scenario.boot_only:  # the warm-up begins once the fleet is up
                with contextlib.suppress(TimeoutError):
                    await self.until(lambda f: len(f.shared.accepted_s) >= f.count, BOOT_LIMIT_S)
            if self.scenario.start_at_once and self.scenario.charging:  # and charging
                with contextlib.suppress(TimeoutError):
                    await self.until(
                        lambda f: f.shared.transactions_started >= f.count, BOOT_LIMIT_S
                    )
            if await self._pause(self.scenario.warmup_s):
                return self.result()
            self.begin_window()
            length_s = self.scenario.duration_s if duration_s is None else duration_s
            if self.scenario.boot_only:  # done when every station is Accepted
                with contextlib.suppress(TimeoutError):
                    await self.until(lambda f: len(f.shared.accepted_s) >= f.count, length_s)
            else:
                await self._pause(length_s)
            self.end_window()
        finally:
            await self.stop()
        return self.result()

    def begin_window(self) -> None:
        self.shared.recording = True
        self._watch_cpu = {name: cpu_seconds(pid) for name, pid in self.watch.items()}
        self._window = (time.monotonic(), 0.0)

    def end_window(self) -> None:
        self.shared.recording = False
        self._window = (self._window[0], time.monotonic())
        window_s = max(self._window[1] - self._window[0], 1e-9)
        cpu = {
            name: round((cpu_seconds(pid) - self._watch_cpu.get(name, 0.0)) / window_s, 3)
            for name, pid in self.watch.items()
        }
        self._watched = (cpu, {name: rss_kb(pid) for name, pid in self.watch.items()})

    async def _pause(self, seconds: float) -> bool:
        """Sleep, unless stopped first (then True)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def until(self, predicate: Callable[[Fleet], bool], timeout_s: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every change of the counters
        (first Accepted, completed transaction, answered command) and at least every 100 ms;
        TimeoutError after ``timeout_s``."""
        changed = self.shared.changed
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.1)

    # -- one station's connection ------------------------------------------------------------
    async def _live(self, station: SimStation, index: int) -> None:
        shared = self.shared
        first, largest = self.scenario.backoff_s
        attempt = 0
        url = f"{self.url}/{station.station_id}"
        headers = {"Sec-WebSocket-Protocol": shared.dialect.subprotocol}
        if self.password is not None:
            secret = f"{station.station_id}:{self.password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(secret).decode()}"
        while not shared.stopping:
            if attempt and not station.reboot:
                delay = min(largest, first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if await self._pause(delay):
                    return
            transport = await self._connect(station, url, headers, self._source(index))
            if transport is None:
                attempt += 1
                continue
            if station.connection > 1:
                shared.reconnects += 1
            shared.online += 1
            await transport.wait_disconnected()
            shared.online -= 1
            attempt = 1 if station.accepted or station.ever_accepted else attempt + 1

    def _source(self, index: int) -> Callable[[object], socket.socket] | None:
        if self.source_addresses <= 0:
            return None
        address = str(SOURCE_BASE + index % self.source_addresses)

        def bound(_: object) -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((address, 0))
            return sock

        return bound

    async def _connect(
        self,
        station: SimStation,
        url: str,
        headers: dict[str, str],
        source: Callable[[object], socket.socket] | None,
    ) -> picows.WSTransport | None:
        gate = self._gate
        try:
            if gate is not None:
                await gate.acquire()
            try:
                transport, _ = await asyncio.wait_for(
                    picows.ws_connect(
                        lambda: station,
                        url,
                        extra_headers=headers,
                        ssl_context=self.ssl_context,
                        socket_factory=source,
                        websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                        read_buffer_init_size=4096,
                    ),
                    CONNECT_TIMEOUT_S,
                )
            finally:
                if gate is not None:
                    gate.release()
        except (OSError, TimeoutError, picows.WSError) as err:
            self.shared.errors[f"connect_{type(err).__name__}"] += 1
            return None
        return transport

    # -- fleet-wide timers ---------------------------------------------------------------------
    async def _tick(self) -> None:
        timeout_ns = int(self.scenario.call_timeout_s * 1e9)
        last = (time.monotonic(), 0)
        while not await self._pause(1.0):
            now_ns = time.perf_counter_ns()
            for station in self.stations:
                if station.flight is not None:
                    station.check_timeout(now_ns, timeout_ns)
            if self.progress:
                last = self._progress(last)

    def _progress(self, last: tuple[float, int]) -> tuple[float, int]:
        shared = self.shared
        now = time.monotonic()
        answered = sum(shared.answered.values())
        rate = (answered - last[1]) / max(now - last[0], 1e-9)
        errors = sum(shared.callerrors.values()) + sum(shared.timeouts.values())
        line = (
            f"{now - shared.started:6.0f} s  online {shared.online:,}/{self.count:,}  "
            f"accepted {len(shared.accepted_s):,}  charging {sum(1 for s in self.stations if s.tx)}"
            f"  answered {answered:,} ({rate:,.0f}/s)  tx done {shared.transactions_completed:,}"
            f"  errors {errors:,}  reconnects {shared.reconnects:,}"
        )
        end = "\r" if sys.stderr.isatty() else "\n"
        print(line, end=end, file=sys.stderr, flush=True)
        return now, answered

    async def _bursts(self) -> None:
        """At each multiple of the interval (UTC), every charging station's clock values; the
        bursts inside the measured window are recorded."""
        interval = self.scenario.clock_aligned_interval_s
        shared = self.shared
        while True:
            wall = time.time()
            boundary = (int(wall // interval) + 1) * interval
            if await self._pause(boundary - wall):
                return
            if not shared.recording:
                for station in self.stations:
                    station.clock_aligned(-1)
                continue
            now = time.monotonic()
            record = [boundary, 0.0, 0.0, now, now]
            shared.bursts.append(record)
            burst = len(shared.bursts) - 1
            record[1] = sum(1 for s in self.stations if s.clock_aligned(burst))

    # -- the report ------------------------------------------------------------------------
    def result(self) -> FleetResult:
        shared = self.shared
        begin, end = self._window
        window_s = end - begin if end else 0.0
        accepted = sorted(shared.accepted_s)
        connected = sorted(shared.connected_s)
        all_connected = connected[-1] if len(connected) == self.count else None
        handshake_s = all_connected or (time.monotonic() - shared.started)
        boot = BootStorm(
            connected=len(connected),
            accepted=len(accepted),
            all_connected_s=_round(all_connected),
            all_accepted_s=_round(accepted[-1] if len(accepted) == self.count else None),
            handshakes_per_s=round(len(connected) / handshake_s, 1) if handshake_s else 0.0,
            accepted_p50_s=_round(_at(accepted, 0.5)) or 0.0,
            accepted_p99_s=_round(_at(accepted, 0.99)) or 0.0,
        )
        return FleetResult(
            scenario=self.scenario.name,
            version=self.version,
            url=self.url,
            stations=self.count,
            duration_s=round(window_s, 3),
            boot=boot,
            sent=_names(shared.sent),
            answered=_names(shared.answered),
            callerrors=_names(shared.callerrors),
            timeouts=_names(shared.timeouts),
            errors=dict(shared.errors),
            window_answered=shared.window_answered,
            answered_per_s=round(shared.window_answered / window_s, 1) if window_s else 0.0,
            latency=percentiles(list(shared.latencies_us)),
            transactions_started=shared.transactions_started,
            transactions_completed=shared.transactions_completed,
            reconnects=shared.reconnects,
            retries=shared.retries,
            replayed=shared.replayed,
            commands=dict(shared.commands),
            bursts=[_burst(b) for b in shared.bursts],
            server_cpu=self._watched[0],
            server_rss_kb=self._watched[1],
            sim_cpu=round(
                (time.process_time() - self._cpu_start)
                / max(time.monotonic() - self._wall_start, 1e-9),
                3,
            ),
        )


def _names(counter: dict[bytes, int]) -> dict[str, int]:
    return {k.decode(): v for k, v in sorted(counter.items())}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _at(values: list[float], q: float) -> float | None:
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def _burst(record: list[float]) -> Burst:
    boundary, sent, answered, last, started = record
    return Burst(
        at=time.strftime("%H:%M:%S", time.gmtime(boundary)),
        sent=int(sent),
        answered=int(answered),
        all_answered_s=round(max(last - started, 0.0), 3),
    )
