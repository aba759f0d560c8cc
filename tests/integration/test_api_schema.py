"""The OpenAPI schema fuzzed by schemathesis against a real ``csms serve``: no 5xx, ever."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from streams.embedded import EmbeddedNats
from tests.integration.api_support import AnsweringStation, report_transaction, start_gateway

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def test_schemathesis_finds_no_server_error(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    gateway = await start_gateway(tmp_path / "gw", nats_server.url)
    # One connected station of each version, so that generated commands can reach the core's
    # validation and a station (which accepts everything) and not only the 404 of unknown ids.
    stations = [
        await AnsweringStation.connect(
            f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}",
            subprotocol,
            after=report_transaction,
        )
        for station_id, subprotocol in (("CP1", "ocpp1.6"), ("cp2", "ocpp2.0.1"))
    ]
    try:
        process = await asyncio.create_subprocess_exec(
            SCHEMATHESIS, "--config-file", str(CONFIG), "run",
            f"{gateway.api_url}/schema/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "10", "--workers", "2",
            "--request-timeout", "30", "--seed", "1", "--phases", "examples,coverage,fuzzing",
            "--generation-database", "none",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # its caches (.schemathesis/) stay out of the checkout
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 120)
        except TimeoutError:
            process.kill()
            raise
        report = out.decode(errors="replace")
        assert process.returncode == 0, report[-6000:]
    finally:
        for station in stations:
            await station.close()
        await gateway.stop()
