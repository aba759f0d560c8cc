"""`csms serve` as real processes: two gateways on one NATS, and a SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import msgspec
import nats

from streams.embedded import EmbeddedNats, free_port
from streams.presence import StationPresence
from streams.presence import open_bucket as open_presence
from tests.integration.conftest import read_all_events
from tests.integration.station import Station

NOW = "2026-11-21T10:00:00Z"


class ServeProcess:
    def __init__(self, process: asyncio.subprocess.Process, ocpp_port: int) -> None:
        self.process = process
        self.url = f"ws://127.0.0.1:{ocpp_port}/ocpp"


async def start_serve(tmp_path: Path, nats_url: str, name: str) -> ServeProcess:
    ocpp_port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "serve", "--host", "127.0.0.1",
        "--ocpp-port", str(ocpp_port), "--api-port", str(free_port()),
        "--data-dir", str(tmp_path / name), "--nats-url", nats_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None

    # Ready when it prints its OCPP URL (it does so once the listener is up).
    async def ready() -> None:
        while line := await process.stdout.readline():  # type: ignore[union-attr]
            if b"OCPP on ws://" in line:
                return
        raise RuntimeError("csms serve exited before it was ready")

    await asyncio.wait_for(ready(), 30)
    return ServeProcess(process, ocpp_port)


async def test_two_serve_processes_share_transaction_ids_and_drain_on_sigterm(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    first = await start_serve(tmp_path, nats_server.url, "a")
    second = await start_serve(tmp_path, nats_server.url, "b")
    try:
        ids = []
        stations = []
        for i, gateway in enumerate([first, second, first, second]):
            station = await Station.connect(f"{gateway.url}/CP{i}", "ocpp1.6")
            stations.append(station)
            for n in range(5):
                start = {"connectorId": 1, "idTag": "T", "meterStart": n, "timestamp": NOW}
                ids.append((await station.call("StartTransaction", start))[2]["transactionId"])
        assert len(set(ids)) == len(ids) == 20

        first.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(first.process.wait(), 10)
        assert code == 0
        for station in stations[0::2]:  # the stations of the first gateway
            await asyncio.wait_for(station.listener.closed.wait(), 5)
            received = station.transport.close_handshake.recv
            assert received is not None
            assert received.code.value == 1001
        # The second gateway is unaffected.
        assert (await stations[1].call("Heartbeat", {}))[0] == 3
    finally:
        for gateway in (first, second):
            if gateway.process.returncode is None:
                gateway.process.kill()
                await gateway.process.wait()


async def _lines(process: asyncio.subprocess.Process, into: asyncio.Queue[str]) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        into.put_nowait(line.decode())


async def _line_with(lines: asyncio.Queue[str], text: str, timeout_s: float = 30) -> str:
    async def find() -> str:
        while text not in (line := await lines.get()):
            pass
        return line

    return await asyncio.wait_for(find(), timeout_s)


def _samples(metrics: str) -> dict[str, float]:
    """Prometheus text → sample (name with labels) → value."""
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in metrics.splitlines())
        if name and not name.startswith("#")
    }


async def _connected_nodes(nats_url: str, stations: list[str]) -> dict[str, str]:
    """Station → node of its open session, as presence has it once all of them are written
    (awaited on a watch of the bucket: presence is written beside the session, not before)."""
    nc = await nats.connect(nats_url)
    try:
        kv = await open_presence(nc.jetstream())
        watcher = await kv.watch("st.>")
        nodes: dict[str, str] = {}

        async def collect() -> None:
            while len(nodes) < len(stations):
                entry = await watcher.updates(timeout=10)  # type: ignore[no-untyped-call]
                if entry is None or not entry.value:
                    continue
                presence = msgspec.json.decode(entry.value, type=StationPresence)
                if presence.station_id in stations and presence.connected:
                    nodes[presence.station_id] = presence.node_id

        await asyncio.wait_for(collect(), 15)
        await watcher.stop()  # type: ignore[no-untyped-call]
        return nodes
    finally:
        await nc.close()


async def _boot(url: str, name: str) -> tuple[Station, int]:
    station = await Station.connect(f"{url}/{name}", "ocpp1.6")
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    assert (await station.call("BootNotification", boot))[2]["status"] == "Accepted"
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
    answer = await station.call("StartTransaction", start)
    return station, answer[2]["transactionId"]


async def test_workers_share_the_port_restart_a_killed_one_and_drain_together(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """``csms serve --workers 2``: two processes on one port (SO_REUSEPORT), both answering;
    a SIGKILLed worker is restarted under its node id; SIGTERM drains both with 1001."""
    ocpp_port, api_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "serve", "--workers", "2", "--host", "127.0.0.1",
        "--ocpp-port", str(ocpp_port), "--api-port", str(api_port),
        "--data-dir", str(tmp_path / "w"), "--nats-url", nats_server.url,
        env={**os.environ, "CSMS_NODE_ID": "gw", "CSMS_PROJECTIONS": "false"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    lines: asyncio.Queue[str] = asyncio.Queue()
    reader = asyncio.get_running_loop().create_task(_lines(process, lines))
    url = f"ws://127.0.0.1:{ocpp_port}/ocpp"
    stations: list[Station] = []
    try:
        group = await _line_with(lines, "gateway processes on the OCPP port")
        child = int(group.rstrip().rstrip(")").rsplit(" ", 1)[1])
        names = [f"WK{i}" for i in range(12)]
        ids = []
        for name in names:
            station, transaction_id = await _boot(url, name)
            stations.append(station)
            ids.append(transaction_id)
        assert len(set(ids)) == 12
        nodes = await _connected_nodes(nats_server.url, names)
        assert set(nodes.values()) == {"gw", "gw-w1"}  # 12 connections: both took some
        # /metrics (the first process's API) covers both processes, each under its node id
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
            samples = _samples((await client.get("/metrics")).text)
            up = ('csms_gateway_up{node="gw"}', 'csms_gateway_up{node="gw-w1"}')
            assert [samples[name] for name in up] == [1, 1]
            for node in ("gw", "gw-w1"):
                held = sum(1 for n in nodes.values() if n == node)
                assert samples[f'csms_gateway_stations{{node="{node}"}}'] == held
                assert samples[f'csms_gateway_sessions_opened_total{{node="{node}"}}'] == held
                # booted, StartTransaction: each station's events stored where it connected
                assert samples[f'csms_events_stored_total{{node="{node}"}}'] >= 2 * held
            health = (await client.get("/healthz")).json()
            assert health["components"]["gateway_workers"] is True
            # a worker alive but not answering (its loop frozen): /healthz and /metrics say
            # so, until it answers again
            os.kill(child, signal.SIGSTOP)
            try:
                frozen = await client.get("/healthz")
                assert frozen.status_code == 503
                assert frozen.json()["components"]["gateway_workers"] is False
                samples = _samples((await client.get("/metrics")).text)
                assert [samples[name] for name in up] == [1, 0]
            finally:
                os.kill(child, signal.SIGCONT)
            assert (await client.get("/healthz")).status_code == 200

        os.kill(child, signal.SIGKILL)
        on_child = [s for s, n in zip(stations, names, strict=True) if nodes[n] == "gw-w1"]
        for station in on_child:
            await asyncio.wait_for(station.listener.closed.wait(), 10)
        await _line_with(lines, "csms: worker gw-w1 listening")  # restarted
        more = [f"WL{i}" for i in range(12)]
        stations.extend([(await _boot(url, name))[0] for name in more])
        assert set((await _connected_nodes(nats_server.url, more)).values()) == {"gw", "gw-w1"}

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        for station in stations:
            if station in on_child:
                continue
            await asyncio.wait_for(station.listener.closed.wait(), 5)
            received = station.transport.close_handshake.recv
            assert received is not None
            assert received.code.value == 1001
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()


async def test_ctrl_c_to_the_process_group_drains_before_the_embedded_nats_stops(
    tmp_path: Path,
) -> None:
    """A terminal's Ctrl-C (SIGINT to the whole process group) reaches ``csms serve`` only: its
    children run in sessions of their own, so the embedded nats-server still stores what the
    drain writes (the close of every session) and no NATS client sees it vanish."""
    ocpp_port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "serve", "--host", "127.0.0.1",
        "--ocpp-port", str(ocpp_port), "--api-port", str(free_port()),
        "--data-dir", str(tmp_path / "d"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own group, as in a terminal: killpg reaches only it
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    lines: asyncio.Queue[str] = asyncio.Queue()
    reader = asyncio.get_running_loop().create_task(_lines(process, lines))
    try:
        await _line_with(lines, "csms: NATS ")
        station, _ = await _boot(f"ws://127.0.0.1:{ocpp_port}/ocpp", "CC1")
        os.killpg(process.pid, signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        await asyncio.wait_for(station.listener.closed.wait(), 5)
        received = station.transport.close_handshake.recv
        assert received is not None
        assert received.code.value == 1001
        stderr = (await process.stderr.read()).decode(errors="replace")
        assert "nats: encountered error" not in stderr
        # The store has the session's end, written during the drain.
        store = EmbeddedNats(tmp_path / "d" / "nats")
        await store.start()
        try:
            events = await read_all_events(store.url, "CC1")
        finally:
            await store.stop()
        assert events[0].kind == "connected"
        assert events[-1].kind == "disconnected"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()
