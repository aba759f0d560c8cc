"""One battery run: start the processes, run the stations, inject the faults at seeded random
times, heal, stop, read the stream and the projections, check. Sleeps here are fault durations
and station pacing (chosen by the seeded random generator), never synchronisation: every "until
ready/drained/reconnected" is a condition awaited with a deadline.

Faults (reliability.md §5.4):
- ``nats-kill``: SIGKILL of nats-server (single node; in the cluster the stream's leader, R3:
  F1), restarted after 1-4 s.
- ``nats-pause``: SIGSTOP of a nats-server for 2-6 s, then SIGCONT (F11 without partitions).
- ``gateway-kill``: SIGKILL of ``csms serve``, restarted on the same port (F6).
- ``projector-kill``: SIGKILL of ``csms projections run`` under ingest, restarted within 1 s
  (F7: with continuous batches a kill lands between insert and ack often, not always; the exact
  "after insert, before ack" crash is ``tests/integration/test_projections.py``'s hook test).
- ``clickhouse-outage``: the embedded ClickHouse (chDB) lives in the projector process, so
  "ClickHouse unavailable" is that process gone for 5-10 s while the gateway keeps answering
  (F8 at small scale); the backlog then drains. A ClickHouse server behind ``http://`` is not
  exercised here (none on this machine).
- ``canary-rollback``: the canary (F5's OS crash, simulated): a copy of the single node's store
  taken while it is paused, 2-4 s more traffic, SIGKILL, the store replaced by the copy (what a
  power cut does to writes that were not fsynced yet), restart. Acknowledged CALLs vanish and
  the checker must say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats

from streams.projections.projector import DURABLE
from streams.subjects import STREAM
from tests.faults import checker
from tests.faults.processes import NatsTopology, Projector, Serve
from tests.faults.station import SimStation

FAULTS = ("nats-kill", "nats-pause", "gateway-kill", "projector-kill", "clickhouse-outage")
CANARY = ("canary-rollback",)


@dataclass
class BatteryConfig:
    out_dir: Path
    stations: int = 200
    duration_s: float = 60.0
    seed: int = 1
    nats_nodes: int = 1
    faults: tuple[str, ...] = FAULTS
    interval_s: float = 1.0
    call_timeout_s: float = 5.0
    heal_timeout_s: float = 90.0
    share_16: float = 0.5
    check_projections: bool = True


@dataclass
class FaultRecord:
    name: str
    target: str
    start_s: float
    end_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Battery:
    def __init__(self, config: BatteryConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        root = config.out_dir / "run"
        if root.exists():
            shutil.rmtree(root)
        self.nats = NatsTopology(root, config.nats_nodes)
        self.gateway = Serve(root, self.nats.seed_url, self.nats.replicas)
        self.projector = Projector(root, self.nats.seed_url)
        self.stations = [
            SimStation(
                f"FB{i:04d}",
                "1.6" if self.rng.random() < config.share_16 else "2.0.1",
                config.seed * 100_003 + i,
                interval_s=config.interval_s,
                call_timeout_s=config.call_timeout_s,
            )
            for i in range(config.stations)
        ]
        self.faults: list[FaultRecord] = []
        self.failed_starts: dict[str, int] = {}
        self.t0 = 0.0
        self.timings: dict[str, float | str | None] = {}

    def _elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    async def run(self) -> dict[str, Any]:
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        drained: float | None = 0.0
        try:
            await self.nats.start()
            await self._supervise(self.gateway)
            if self.config.check_projections:
                await self._supervise(self.projector)
            self.t0 = time.monotonic()
            tasks = [
                asyncio.create_task(self._station(s, stop, self.rng.uniform(0, 2)))
                for s in self.stations
            ]
            await self._inject()
            await self._until(self.t0 + self.config.duration_s)
            await self._heal()
            healed_ns = time.time_ns()
            self.timings["healed_at_s"] = self._elapsed()
            self.timings["all_answered_after_heal_s"] = await self._await_answers(healed_ns)
            stop.set()
            await self._stop_stations(tasks)
            await self.gateway.stop()
            if self.config.check_projections:
                drained = await self._await_drained()
                self.timings["projection_drained_after_heal_s"] = drained
                await self.projector.stop()
            stream = await checker.read_stream(self.nats.urls)
            projected = None
            if self.config.check_projections:
                projected = await checker.read_projections(
                    self.projector.clickhouse_url, str(self.projector.data_dir)
                )
            result = checker.check(
                [s.log for s in self.stations],
                stream,
                projected,
                healed_ns,
                drained,
            )
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await self.gateway.kill9()
            await self.projector.kill9()
            await self.nats.stop()
        report = {
            "code": _code_version(),
            "config": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()
            },
            "faults": [asdict(f) for f in self.faults],
            "timings": self.timings,
            "restarts": {
                "gateway": self.gateway.starts - 1 - self.failed_starts.get("gateway", 0),
                "projector": max(self.projector.starts - 1, 0)
                - self.failed_starts.get("projector", 0),
                "nats": sum(n.starts - 1 for n in self.nats.nodes),
            },
            "failed_starts": self.failed_starts,
            **result,
        }
        self.config.out_dir.mkdir(parents=True, exist_ok=True)
        (self.config.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (self.config.out_dir / "journal.json").write_text(
            json.dumps([s.log.to_json() for s in self.stations])
        )
        return report

    async def _station(self, station: SimStation, stop: asyncio.Event, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)  # a boot spread over 2 s
        await station.run(self.gateway.ocpp_url, stop)

    async def _until(self, at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _inject(self) -> None:
        """Faults in a seeded random order at seeded random times, one after another."""
        names = list(self.config.faults)
        self.rng.shuffle(names)
        starts = sorted(self.rng.uniform(0.1, 0.7) * self.config.duration_s for _ in names)
        for name, start in zip(names, starts, strict=True):
            await self._until(self.t0 + start)
            await getattr(self, "_fault_" + name.replace("-", "_"))()

    def _record(self, name: str, target: str) -> FaultRecord:
        record = FaultRecord(name, target, self._elapsed())
        self.faults.append(record)
        return record

    async def _answers_between(self, action: Any) -> int:
        """Run ``action``; how many CALLRESULTs the stations received meanwhile."""
        before = sum(len(s.log.results()) for s in self.stations)
        await action
        return sum(len(s.log.results()) for s in self.stations) - before

    async def _stream_leader(self) -> str | None:
        with contextlib.suppress(Exception):
            nc = await nats.connect(self.nats.urls, connect_timeout=1, max_reconnect_attempts=0)
            try:
                info = await nc.jetstream(timeout=2).stream_info(STREAM)
                return info.cluster.leader if info.cluster else None
            finally:
                await nc.close()
        return None

    async def _fault_nats_kill(self) -> None:
        node = self.rng.choice(self.nats.nodes)
        leader = await self._stream_leader() if len(self.nats.nodes) > 1 else None
        # In the cluster the stream leader (F1: the harder case, an election under traffic).
        node = next((n for n in self.nats.nodes if n.name == leader), node)
        record = self._record("nats-kill", node.name)
        record.detail["stream_leader"] = leader
        await node.kill9()
        down_s = self.rng.uniform(1, 4)
        record.detail["down_s"] = round(down_s, 2)
        record.detail["answers_while_down"] = await self._answers_between(asyncio.sleep(down_s))
        await node.start()
        record.end_s = self._elapsed()

    async def _fault_nats_pause(self) -> None:
        node = self.rng.choice(self.nats.nodes)
        record = self._record("nats-pause", node.name)
        node.pause()
        paused_s = self.rng.uniform(2, 6)
        record.detail["paused_s"] = round(paused_s, 2)
        record.detail["answers_while_paused"] = await self._answers_between(asyncio.sleep(paused_s))
        node.resume()
        record.end_s = self._elapsed()

    async def _fault_gateway_kill(self) -> None:
        record = self._record("gateway-kill", "csms serve")
        await self.gateway.kill9()
        await self._supervise(self.gateway)
        record.end_s = self._elapsed()

    async def _fault_projector_kill(self) -> None:
        if not self.config.check_projections:
            return
        record = self._record("projector-kill", "csms projections run")
        await self.projector.kill9()
        await asyncio.sleep(self.rng.uniform(0, 1))
        await self._supervise(self.projector)
        record.end_s = self._elapsed()

    async def _fault_clickhouse_outage(self) -> None:
        if not self.config.check_projections:
            return
        record = self._record("clickhouse-outage", "embedded chDB (projector process)")
        await self.projector.kill9()
        down_s = self.rng.uniform(5, 10)
        record.detail["down_s"] = round(down_s, 2)
        record.detail["answers_while_down"] = await self._answers_between(asyncio.sleep(down_s))
        await self._supervise(self.projector)
        record.end_s = self._elapsed()

    async def _fault_canary_rollback(self) -> None:
        node = self.nats.nodes[0]
        record = self._record("canary-rollback", node.name)
        snapshot = node.store.parent / "snapshot"
        node.pause()
        try:
            await asyncio.to_thread(shutil.copytree, node.store, snapshot)
        finally:
            node.resume()
        more_s = self.rng.uniform(2, 4)
        record.detail["answers_after_snapshot"] = await self._answers_between(asyncio.sleep(more_s))
        await node.kill9()
        await asyncio.to_thread(shutil.rmtree, node.store)
        await asyncio.to_thread(shutil.move, snapshot, node.store)
        await node.start()
        record.end_s = self._elapsed()

    async def _supervise(self, child: Serve | Projector, timeout_s: float = 90.0) -> None:
        """Start ``child`` as a process supervisor would: again after a failed start (e.g.
        ``csms serve`` exits when JetStream does not answer at start, during an election),
        until ``timeout_s``. Failed starts are counted in the report."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await child.start()
                return
            except (RuntimeError, TimeoutError):
                self.failed_starts[child.name] = self.failed_starts.get(child.name, 0) + 1
                await child.kill9()
                if time.monotonic() > deadline:
                    raise

    async def _heal(self) -> None:
        """Whatever is down or paused comes back."""
        for node in self.nats.nodes:
            node.resume()
            if not node.running:
                await node.start()
        await self.nats.wait_jetstream(30)
        if not self.gateway.running:
            await self._supervise(self.gateway)
        if self.config.check_projections and not self.projector.running:
            await self._supervise(self.projector)

    async def _await_answers(self, healed_ns: int) -> float | None:
        """Seconds until every station got a CALLRESULT after healing (None: not all did
        within heal_timeout_s; the checker reports the fraction)."""
        start = time.monotonic()
        deadline = start + self.config.heal_timeout_s
        while time.monotonic() < deadline:
            if all(s.log.last_result_ns() > healed_ns for s in self.stations):
                return round(time.monotonic() - start, 3)
            await asyncio.sleep(0.1)
        return None

    async def _stop_stations(self, tasks: list[asyncio.Task[None]]) -> None:
        _, pending = await asyncio.wait(tasks, timeout=self.config.call_timeout_s + 2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _await_drained(self, timeout_s: float = 120.0) -> float | None:
        """Seconds until the projector's durable consumer (``csms-projections``, or
        ``csms-projections-<store id>``) has nothing pending or unacked (None: not within
        ``timeout_s``, I5's bound; the checker then reads what is there)."""
        start = time.monotonic()
        nc = await nats.connect(self.nats.urls, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=5)
            while time.monotonic() < start + timeout_s:
                try:
                    consumers = [
                        c for c in await js.consumers_info(STREAM) if c.name.startswith(DURABLE)
                    ]
                except (nats.errors.Error, OSError, TimeoutError) as err:  # reported if it lasts
                    self.timings["projection_consumer_error"] = f"{type(err).__name__}: {err}"
                else:
                    self.timings.pop("projection_consumer_error", None)
                    pending = sum(
                        (c.num_pending or 0) + (c.num_ack_pending or 0) for c in consumers
                    )
                    self.timings["projection_pending_at_timeout"] = pending
                    if consumers and not pending:
                        self.timings.pop("projection_pending_at_timeout")
                        return round(time.monotonic() - start, 3)
                await asyncio.sleep(0.2)
        finally:
            await nc.close()
        return None


def _code_version() -> dict[str, Any]:
    """The commit the run used and the files that differed from it (a shared working tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None}
    return {"commit": head, "modified": [line[3:] for line in status]}


def summary(report: dict[str, Any]) -> str:
    """A few human lines from a report."""
    config = report["config"]
    lines = [
        f"fault battery: {config['stations']} stations, {config['duration_s']} s, seed "
        f"{config['seed']}, {config['nats_nodes']} nats node(s): "
        + ("PASS" if report["pass"] else "FAIL"),
        f"code: {report['code'].get('commit')}, modified: {report['code'].get('modified')}",
        "faults: "
        + ", ".join(f"{f['name']}@{f['start_s']:.1f}s({f['target']})" for f in report["faults"]),
        "counts: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items()),
        "timings: " + ", ".join(f"{k} {v}" for k, v in report["timings"].items()),
        f"restarts: {report['restarts']}, failed starts: {report['failed_starts']}",
    ]
    for name, inv in report["invariants"].items():
        numbers = ", ".join(f"{k} {v}" for k, v in inv.items() if k not in ("pass", "examples"))
        lines.append(f"  {'ok  ' if inv['pass'] else 'FAIL'} {name}: {numbers}")
        if not inv["pass"] and inv.get("examples"):
            lines.append(f"       e.g. {inv['examples'][:3]}")
    return "\n".join(lines)
