"""A simulated station for the fault battery: raw OCPP-J over ``websockets``, one CALL in flight,
retries of an unanswered CALL with the same payload, reconnect with back-off, and a journal of
every attempt and every answer with wall-clock times (the checker's ground truth).

Retries follow the versions' habits: a 1.6 station re-sends a transaction message with a new
message id and the same fields (so a StartTransaction retry must get the same transactionId);
a 2.x station re-sends the same frame, same messageId (TransactionEvent with its seqNo). An
answer that arrives late, after the station gave up waiting, still counts as received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

BOOT_16 = {"chargePointVendor": "Faults", "chargePointModel": "Battery-16"}
BOOT_201 = {
    "reason": "PowerUp",
    "chargingStation": {"model": "Battery-201", "vendorName": "Faults"},
}
MEASURAND = "Energy.Active.Import.Register"


@dataclass
class Call:
    """One logical CALL of a station (retried until answered)."""

    n: int
    action: str
    payload: dict[str, Any]
    ids: list[str] = field(default_factory=list)
    """Message ids of its attempts, in order (repeats for a 2.x retry)."""
    sent_ns: list[int] = field(default_factory=list)


@dataclass
class Answer:
    message_type: int
    received_ns: int
    payload: Any


@dataclass
class StationLog:
    station_id: str
    version: str
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    connects_ns: list[int] = field(default_factory=list)

    def results(self) -> dict[str, Answer]:
        """The first CALLRESULT received per message id."""
        out: dict[str, Answer] = {}
        for unique_id, answers in self.answers.items():
            for answer in answers:
                if answer.message_type == 3:
                    out[unique_id] = answer
                    break
        return out

    def last_result_ns(self) -> int:
        return max(
            (
                a.received_ns
                for answers in self.answers.values()
                for a in answers
                if a.message_type == 3
            ),
            default=0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "version": self.version,
            "connects_ns": self.connects_ns,
            "calls": [
                {
                    "n": c.n,
                    "action": c.action,
                    "payload": c.payload,
                    "ids": c.ids,
                    "sent_ns": c.sent_ns,
                }
                for c in self.calls
            ],
            "answers": {
                k: [[a.message_type, a.received_ns, a.payload] for a in v]
                for k, v in self.answers.items()
            },
        }


def _iso(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


class SimStation:
    """One station; ``run`` until ``stop`` is set."""

    def __init__(
        self,
        station_id: str,
        version: str,
        seed: int,
        *,
        interval_s: float = 1.0,
        call_timeout_s: float = 5.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 4.0,
    ) -> None:
        self.log = StationLog(station_id, version)
        self.rng = random.Random(seed)
        self.interval_s = interval_s
        self.call_timeout_s = call_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._script = self._calls()
        self._current: Call | None = None
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._attempts = 0
        self._clock_ms = int(time.time() * 1000)
        self._tx_id: Any = None  # 1.6: the transactionId of the running transaction

    @property
    def subprotocol(self) -> str:
        return "ocpp1.6" if self.log.version == "1.6" else "ocpp2.0.1"

    async def run(self, base_url: str, stop: asyncio.Event) -> None:
        url = f"{base_url}/{self.log.station_id}"
        backoff = self.backoff_min_s
        while not stop.is_set():
            with contextlib.suppress(OSError, TimeoutError, WebSocketException, ConnectionError):
                async with connect(
                    url,
                    subprotocols=[self.subprotocol],  # type: ignore[list-item]
                    open_timeout=5,
                    ping_interval=None,
                    close_timeout=1,
                    max_queue=None,
                ) as ws:
                    self.log.connects_ns.append(time.time_ns())
                    backoff = self.backoff_min_s
                    await self._session(ws, stop)
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff * self.rng.uniform(0.5, 1.5))
            backoff = min(backoff * 2, self.backoff_max_s)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        reader = asyncio.create_task(self._read(ws))
        try:
            while not stop.is_set():
                if reader.done():
                    raise ConnectionError("closed")
                if self._current is None:
                    self._current = next(self._script)
                answer = await self._attempt(ws, self._current, reader)
                if answer is not None and answer.message_type == 3:
                    self._on_result(self._current, answer.payload)
                    self._current = None
                    pause = self.interval_s * self.rng.uniform(0.5, 1.5)
                else:  # timeout or CALLERROR: the same CALL again after a short pause
                    pause = 0.2 * self.rng.uniform(0.5, 1.5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            for future in self._waiting.values():
                if not future.done():
                    future.cancel()
            self._waiting.clear()

    async def _attempt(
        self, ws: ClientConnection, call: Call, reader: asyncio.Task[None]
    ) -> Answer | None:
        self._attempts += 1
        if self.log.version == "1.6" or not call.ids:
            unique_id = f"{self.log.station_id}-{call.n}-{len(call.ids)}"
        else:
            unique_id = call.ids[0]  # 2.x: the same frame, same messageId
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[unique_id] = future
        call.ids.append(unique_id)
        call.sent_ns.append(time.time_ns())
        await ws.send(json.dumps([2, unique_id, call.action, call.payload]))
        either: set[asyncio.Future[Any]] = {future, reader}
        done, _ = await asyncio.wait(
            either, timeout=self.call_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        self._waiting.pop(unique_id, None)
        if future in done and not future.cancelled():
            return future.result()
        if reader in done:
            raise ConnectionError("closed while waiting")
        future.cancel()
        return None

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            received_ns = time.time_ns()
            frame = json.loads(message)
            if frame[0] == 2:  # a CALL of the CSMS: not part of this battery
                await ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
                continue
            answer = Answer(frame[0], received_ns, frame[2] if frame[0] == 3 else frame[2:])
            self.log.answers.setdefault(frame[1], []).append(answer)
            future = self._waiting.get(frame[1])
            if future is not None and not future.done():
                future.set_result(answer)

    # -- the script ---------------------------------------------------------------------------

    def _now(self) -> str:
        self._clock_ms = max(self._clock_ms + 1, int(time.time() * 1000))
        return _iso(self._clock_ms)

    def _call(self, action: str, payload: dict[str, Any]) -> Call:
        made = Call(len(self.log.calls) + 1, action, payload)
        self.log.calls.append(made)
        return made

    def _calls(self) -> Iterator[Call]:
        """Boot once, then transactions and a Heartbeat, forever (built lazily: a 1.6 payload
        needs the transactionId of the answered StartTransaction)."""
        v16 = self.log.version == "1.6"
        yield self._call("BootNotification", BOOT_16 if v16 else BOOT_201)
        meter_wh = self.rng.randrange(0, 100_000)
        tx_no = 0
        while True:
            tx_no += 1
            transaction = self._transaction_16 if v16 else self._transaction_201
            meter_wh = yield from transaction(tx_no, meter_wh)
            yield self._call("Heartbeat", {})

    def _transaction_16(self, tx_no: int, meter_wh: int) -> Generator[Call, None, int]:
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
        yield self._call("StatusNotification", status)
        start = {"connectorId": 1, "idTag": f"TAG{tx_no}", "meterStart": meter_wh}
        yield self._call("StartTransaction", {**start, "timestamp": self._now()})
        for _ in range(self.rng.randrange(2, 6)):
            meter_wh += self.rng.randrange(10, 500)
            sample = {"value": str(meter_wh), "measurand": MEASURAND, "unit": "Wh"}
            reading = {"timestamp": self._now(), "sampledValue": [sample]}
            values = {"connectorId": 1, "transactionId": self._tx_id, "meterValue": [reading]}
            yield self._call("MeterValues", values)
        meter_wh += 1
        stop = {"transactionId": self._tx_id, "meterStop": meter_wh, "reason": "Local"}
        yield self._call("StopTransaction", {**stop, "timestamp": self._now()})
        return meter_wh

    def _transaction_201(self, tx_no: int, meter_wh: int) -> Generator[Call, None, int]:
        tx_id = f"{self.log.station_id}-T{tx_no}"
        status = {"connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
        yield self._call("StatusNotification", {**status, "timestamp": self._now()})
        started = {
            "idToken": {"idToken": f"TAG{tx_no}", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
        }
        seq_no = 0
        event = self._event("Started", "Authorized", seq_no, tx_id, meter_wh, started)
        yield self._call("TransactionEvent", event)
        for _ in range(self.rng.randrange(2, 6)):
            seq_no += 1
            meter_wh += self.rng.randrange(10, 500)
            event = self._event("Updated", "MeterValuePeriodic", seq_no, tx_id, meter_wh, {})
            yield self._call("TransactionEvent", event)
        seq_no += 1
        meter_wh += 1
        event = self._event("Ended", "StopAuthorized", seq_no, tx_id, meter_wh, {}, stopped=True)
        yield self._call("TransactionEvent", event)
        return meter_wh

    def _event(
        self,
        kind: str,
        trigger: str,
        seq_no: int,
        tx_id: str,
        meter_wh: int,
        extra: dict[str, Any],
        stopped: bool = False,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"transactionId": tx_id}
        if stopped:
            info["stoppedReason"] = "Local"
        sample = {"value": meter_wh, "measurand": MEASURAND}
        at = self._now()
        return {
            "eventType": kind,
            "timestamp": at,
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": info,
            "meterValue": [{"timestamp": at, "sampledValue": [sample]}],
            **extra,
        }

    def _on_result(self, call: Call, payload: Any) -> None:
        if call.action == "StartTransaction":
            self._tx_id = payload["transactionId"]
