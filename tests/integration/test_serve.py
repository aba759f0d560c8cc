"""`csms serve` as real processes: two gateways on one NATS, and a SIGTERM drain."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from streams.embedded import EmbeddedNats, free_port
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
