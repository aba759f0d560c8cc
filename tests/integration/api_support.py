"""Helpers of the operator-API tests: stations that answer the CSMS's CALLs, an HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from streams.embedded import free_port
from tests.integration.station import Station

NOW = "2026-11-21T10:00:00Z"

Reply = tuple[str, Any] | None
"""("result", payload) | ("error", (code, description)) | None (stay silent)."""
Answer = Callable[[str, dict[str, Any]], Reply]
After = Callable[["AnsweringStation", str, dict[str, Any]], None]
"""Called after answering a CALL (e.g. to send a StartTransaction after a remote start)."""


def accept_all(action: str, payload: dict[str, Any]) -> Reply:
    if action in ("GetConfiguration",):
        return "result", {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        }
    if action == "GetVariables":
        return "result", {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in payload["getVariableData"]
            ]
        }
    if action == "SetVariables":
        return "result", {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in payload["setVariableData"]
            ]
        }
    if action == "UnlockConnector":
        return "result", {"status": "Unlocked"}
    return "result", {"status": "Accepted"}


class AnsweringStation:
    """A test station that answers every CALL of the CSMS with ``answer`` (and records them)."""

    def __init__(self, station: Station, answer: Answer, after: After | None = None) -> None:
        self.station = station
        self.answer = answer
        self.after = after
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.other: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    @classmethod
    async def connect(
        cls, url: str, subprotocol: str, answer: Answer = accept_all, after: After | None = None
    ) -> AnsweringStation:
        return cls(await Station.connect(url, subprotocol), answer, after)

    async def _run(self) -> None:
        while True:
            data = await self.station.listener.frames.get()
            frame = json.loads(data)
            if frame[0] != 2:
                self.other.put_nowait(frame)
                continue
            _, unique_id, action, payload = frame
            self.calls.append((action, payload))
            reply = self.answer(action, payload)
            if reply is None:
                continue
            if reply[0] == "result":
                self.station.send_text(json.dumps([3, unique_id, reply[1]]))
            else:
                code, description = reply[1]
                self.station.send_text(json.dumps([4, unique_id, code, description, {}]))
            if self.after is not None:
                self.after(self, action, payload)

    async def call(self, action: str, payload: dict[str, Any], unique_id: str) -> list[Any]:
        """A station-initiated CALL and its answer."""
        self.station.send_text(json.dumps([2, unique_id, action, payload]))
        answer = await asyncio.wait_for(self.other.get(), 10)
        assert answer[1] == unique_id, answer
        return answer

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await self.station.close()


def report_transaction(station: AnsweringStation, action: str, payload: dict[str, Any]) -> None:
    """What a charger does after accepting a remote start: it starts the transaction."""
    if action == "RemoteStartTransaction":
        start = {"connectorId": 1, "idTag": payload["idTag"], "meterStart": 0, "timestamp": NOW}
        station.station.send_text(json.dumps([2, "start-1", "StartTransaction", start]))
    elif action == "RequestStartTransaction":
        event = {
            "eventType": "Started",
            "timestamp": NOW,
            "triggerReason": "RemoteStart",
            "seqNo": 0,
            "transactionInfo": {
                "transactionId": "tx-77",
                "remoteStartId": payload["remoteStartId"],
            },
            "idToken": payload["idToken"],
        }
        station.station.send_text(json.dumps([2, "te-1", "TransactionEvent", event]))


@contextlib.asynccontextmanager
async def api_client(base_url: str, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        yield client


async def until(predicate: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Poll an observable condition (async or not) until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def wait_connected(
    client: httpx.AsyncClient, station_id: str, connected: bool = True
) -> None:
    async def check() -> bool:
        response = await client.get(f"/api/v1/stations/{station_id}")
        return response.status_code == 200 and response.json()["connected"] is connected

    await until(check)


class Process:
    """A ``csms`` subprocess started by a test; ``stop`` sends SIGTERM and waits."""

    def __init__(
        self, process: asyncio.subprocess.Process, port: int, api_port: int = 0, output: str = ""
    ) -> None:
        self.process = process
        self.output = output
        """What it printed until it was ready."""
        self.port = port
        self.api_url = f"http://127.0.0.1:{api_port or port}"

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


async def start_process(args: list[str], ready: bytes, port: int, api_port: int = 0) -> Process:
    """Run ``python -m csms ARGS`` until it prints ``ready`` (60 s at most)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    stdout = process.stdout

    lines: list[bytes] = []

    async def started() -> None:
        while line := await stdout.readline():
            lines.append(line)
            if ready in line:
                return
        raise RuntimeError(f"csms {args[0]} exited before it was ready")

    try:
        await asyncio.wait_for(started(), 60)  # generous: two cores shared with other suites
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return Process(process, port, api_port, b"".join(lines).decode())


async def start_gateway(data_dir: Path, nats_url: str) -> Process:
    ocpp_port, api_port = free_port(), free_port()
    args = ["serve", "--host", "127.0.0.1", "--ocpp-port", str(ocpp_port)]
    args += ["--api-port", str(api_port), "--data-dir", str(data_dir), "--nats-url", nats_url]
    return await start_process(args, b"csms: NATS", ocpp_port, api_port)


async def start_api(nats_url: str, *extra: str) -> Process:
    port = free_port()
    args = ["api", "--host", "127.0.0.1", "--api-port", str(port), "--nats-url", nats_url]
    return await start_process([*args, *extra], b"csms: NATS", port)


async def csms_cli(*args: str) -> str:
    """Run ``python -m csms ARGS`` to completion; its standard output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out
    return out.decode()
