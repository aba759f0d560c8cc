"""The legitimate side of the abuse benchmark: N lean stations (``bench.fleet.lean``) sending
meter values at a fixed rate, fresh stations connecting and booting every ``probe_interval``
seconds, and what the server's processes cost, measured over windows."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from typing import Any, cast

import picows
from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.abuse.model import Window
from bench.fleet import scenario as scenarios
from bench.fleet.lean import LeanShared, LeanStation
from bench.fleet.model import percentiles
from bench.fleet.proc import cpu_seconds, rss_kb

CONNECT_CONCURRENCY = 20
"""Below the gateway's 50 pending handshakes per address: the legit load is not the abuser."""
SOURCE = "127.0.0.1"
RSS_EVERY_S = 0.25
PROBE_TIMEOUT_S = 10.0


class Probe(WSListener):
    """A fresh station: connects, sends one BootNotification, waits for the answer."""

    def __init__(self) -> None:
        self.answered = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT and not self.answered.done():
            self.answered.set_result(frame.get_payload_as_bytes().startswith(b"[3,"))


class Legit:
    def __init__(self, url: str, stations: int, rate: float, watch: dict[str, int]) -> None:
        self.url = url
        self.count = stations
        self.shared = LeanShared(scenarios.load("throughput", []), "1.6", rate)
        self.stations: list[LeanStation] = []
        self.watch = watch
        self.probe_url = url
        self.probe_tls: ssl.SSLContext | None = None
        self._serial = 0
        self._probes: set[asyncio.Task[tuple[int, int] | None]] = set()

    async def _connect(self, index: int, gate: asyncio.Semaphore) -> None:
        station_id = f"legit-{index}"
        async with gate:
            try:
                _, listener = await asyncio.wait_for(
                    picows.ws_connect(
                        lambda: LeanStation(index, station_id, self.shared),
                        f"{self.url}/{station_id}",
                        extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
                        local_addr=(SOURCE, 0),
                    ),
                    30,
                )
            except (OSError, TimeoutError, picows.WSError):
                self.shared.errors["connect"] += 1
                return
            station = cast(LeanStation, listener)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(station.booted), 30)
            if station.booted.done() and station.booted.result():
                self.stations.append(station)

    async def start(self) -> int:
        """Connect and boot every station (their transactions started), then start metering."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        await asyncio.gather(*(self._connect(i, gate) for i in range(self.count)))
        self.shared.sending = self.shared.recording = True
        for station in self.stations:
            station.start()
        return len(self.stations)

    async def stop(self) -> None:
        self.shared.sending, self.shared.closing = False, True
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        for station in self.stations:
            station.close()
        waits = [s.transport.wait_disconnected() for s in self.stations if s.transport]
        await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)

    async def _probe(self) -> tuple[int, int] | None:
        """One fresh station: (connect µs, boot answer µs), or None if it failed."""
        self._serial += 1
        station_id = f"probe-{self._serial}"
        started = time.perf_counter_ns()
        try:
            transport, listener = await asyncio.wait_for(
                picows.ws_connect(
                    Probe,
                    f"{self.probe_url}/{station_id}",
                    ssl_context=self.probe_tls,
                    extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
                    local_addr=(SOURCE, 0),
                ),
                PROBE_TIMEOUT_S,
            )
            connected = time.perf_counter_ns()
            if not isinstance(listener, Probe):  # picows: disconnected before it returned
                return None
            probe = listener
            boot = b'{"chargePointVendor":"bench","chargePointModel":"probe"}'
            transport.send(WSMsgType.TEXT, b'[2,"1","BootNotification",%s]' % boot)
            accepted = await asyncio.wait_for(probe.answered, PROBE_TIMEOUT_S)
            booted = time.perf_counter_ns()
            transport.send_close()
            transport.disconnect()
        except (OSError, TimeoutError, picows.WSError):
            return None
        if not accepted:
            return None
        return (connected - started) // 1000, (booted - connected) // 1000

    async def window(self, until: asyncio.Future[Any] | float, probe_every_s: float) -> Window:
        """Measure until ``until`` is done (or for that many seconds), probing meanwhile; the
        probes started in the window are awaited (each at most ``PROBE_TIMEOUT_S`` twice)."""
        shared = self.shared
        first = len(shared.latencies_us)
        answered, errors = shared.answered, Counter(shared.errors)
        probes: list[asyncio.Task[tuple[int, int] | None]] = []
        pids = self.watch
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rss = {name: rss_kb(pid) for name, pid in pids.items()}
        rss_max = dict(rss)
        started = time.monotonic()
        deadline = started + until if isinstance(until, float) else None
        next_probe = next_rss = started
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if not isinstance(until, float) and until.done():
                break
            if now >= next_probe:
                task = asyncio.create_task(self._probe())
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
                probes.append(task)
                next_probe += probe_every_s
            if now >= next_rss:
                for name, pid in pids.items():
                    rss_max[name] = max(rss_max[name], rss_kb(pid))
                next_rss += RSS_EVERY_S
            wake = min(next_probe, next_rss, deadline or next_probe)
            if isinstance(until, float):
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
            else:
                await asyncio.wait([until], timeout=max(0.0, wake - time.monotonic()))
        seconds = time.monotonic() - started
        spent = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
        latencies = list(shared.latencies_us[first:])
        grown = Counter(shared.errors)
        grown.subtract(errors)
        done = list(await asyncio.gather(*probes, return_exceptions=True))
        probed = [r for r in done if isinstance(r, tuple)]
        return Window(
            seconds=round(seconds, 3),
            answered=shared.answered - answered,
            latency=percentiles(latencies),
            errors={k: v for k, v in grown.items() if v},
            probe_connect=percentiles([c for c, _ in probed]),
            probe_boot=percentiles([b for _, b in probed]),
            probe_failures=len(done) - len(probed),
            server_cpu={name: round(s / seconds, 3) for name, s in spent.items()},
            rss_start_kb=rss,
            rss_max_kb=rss_max,
        )


UPGRADE = (
    b"GET /ocpp/after-%d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
)
AFTER_TIMEOUT_S = 6.0
"""Above the gateway's 5 s handshake timeout: a request left unread is seen as ``hung``."""
HUNG_S = 2.0
"""No answer for this long (then a reset or a close) also counts as ``hung``."""


async def after_attack(host: str, port: int, source: str, count: int) -> dict[str, int]:
    """``count`` fresh connections from ``source`` at once, each one upgrade request: what
    came back (a state the attack left behind shows here)."""
    found: Counter[str] = Counter()

    async def one(n: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            found["connect failed"] += 1
            return
        writer.write(UPGRADE % n)
        started = time.monotonic()
        try:
            line = await asyncio.wait_for(reader.readline(), AFTER_TIMEOUT_S)
            kind = "upgraded" if b" 101 " in line else "refused" if line else "closed"
        except TimeoutError:
            kind = "hung"
        except OSError:
            kind = "reset"
        if kind != "upgraded" and time.monotonic() - started > HUNG_S:
            kind = "hung"  # the request sat unread until the handshake timeout
        found[kind] += 1
        writer.close()

    await asyncio.gather(*(one(n) for n in range(count)))
    return dict(found)
