"""What a simulated station says, per OCPP version: payloads as encoded bytes.

Only the station-initiated side lives here (BootNotification, StatusNotification, Authorize,
Heartbeat, 1.6 Start/StopTransaction and MeterValues, 2.x TransactionEvent); answers to CSMS
commands are in ``bench.fleet.commands``. Every payload is schema-valid for its version
(``tests/unit/test_fleet_payloads.py`` checks them with the csms codec).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

ENCODE = msgspec.json.encode
SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
VOLTAGE_V = 230.0
TRIGGERS = {"Sample.Clock": "MeterValueClock", "Trigger": "Trigger"}
"""2.x triggerReason of an Updated TransactionEvent by its meter values' context."""


class Clock:
    """ISO 8601 UTC timestamps, formatted at most once per second (all stations share it)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._text


CLOCK = Clock()


@dataclass(slots=True)
class Transaction:
    """One charging session on connector 1 / EVSE 1 (values the meter readings grow from)."""

    local_id: str
    """2.x transactionId (chosen by the station); 1.6 uses it only to name the session."""
    id_tag: str
    started_at: float = field(default_factory=time.monotonic)
    meter_start_wh: int = 0
    power_w: float = 11_000.0
    soc_start: float = 20.0
    transaction_id: int | None = None
    """1.6: the CSMS's transactionId, from the StartTransaction answer."""
    seq_no: int = 0
    remote_start_id: int | None = None

    def energy_wh(self) -> int:
        return self.meter_start_wh + int(self.power_w * (time.monotonic() - self.started_at) / 3600)

    def soc(self) -> float:
        gained_kwh = (self.energy_wh() - self.meter_start_wh) / 1000
        return min(100.0, round(self.soc_start + gained_kwh * 100 / 60, 1))

    def next_seq_no(self) -> int:
        seq = self.seq_no
        self.seq_no += 1
        return seq


def _readings(tx: Transaction) -> list[tuple[str, str | None, str, str, float]]:
    """(measurand, phase, location, unit, value): the ~10 values of one meter reading."""
    amps = round(tx.power_w / 3 / VOLTAGE_V + random.uniform(-0.3, 0.3), 2)
    rows: list[tuple[str, str | None, str, str, float]] = [
        ("Current.Import", phase, "Outlet", "A", amps) for phase in ("L1", "L2", "L3")
    ]
    rows += [
        ("Voltage", phase, "Outlet", "V", round(VOLTAGE_V + random.uniform(-2, 2), 1))
        for phase in ("L1-N", "L2-N", "L3-N")
    ]
    rows.append(("Energy.Active.Import.Register", None, "Outlet", "Wh", float(tx.energy_wh())))
    rows.append(("Power.Active.Import", None, "Outlet", "W", round(tx.power_w, 1)))
    rows.append(("Current.Offered", None, "Outlet", "A", 16.0))
    rows.append(("SoC", None, "EV", "Percent", tx.soc()))
    return rows


class Dialect:
    """The payloads of one OCPP version (subclasses: 1.6 and 2.x)."""

    version = ""
    status_action = b"StatusNotification"

    @property
    def subprotocol(self) -> str:
        return SUBPROTOCOLS[self.version]

    def boot(self, serial: str, reason: str = "PowerUp") -> bytes:
        raise NotImplementedError

    def status(self, connector_id: int, status: str) -> bytes:
        """``status`` is "Available" or "Occupied" (1.6 says "Charging" for the latter)."""
        raise NotImplementedError

    def authorize(self, id_tag: str) -> bytes:
        raise NotImplementedError

    def meter_template(self, tx: Transaction) -> tuple[bytes, bytes, bytes | None]:
        raise NotImplementedError

    def meter_values(
        self, tx: Transaction, context: str, offline: bool = False
    ) -> tuple[bytes, bytes | dict[str, Any]]:
        """(action, payload) of a meter reading during ``tx``; ``context`` Sample.Periodic,
        Sample.Clock or Trigger; ``offline``: taken while the CSMS was unreachable."""
        raise NotImplementedError


class V16(Dialect):
    version = "1.6"

    def boot(self, serial: str, reason: str = "PowerUp") -> bytes:
        return ENCODE(
            {
                "chargePointVendor": "SimVendor",
                "chargePointModel": "SimAC-22",
                "chargePointSerialNumber": serial[-25:],
                "firmwareVersion": "1.4.2",
                "meterType": "SimMeter 3P",
            }
        )

    def status(self, connector_id: int, status: str) -> bytes:
        wire = "Charging" if status == "Occupied" else status
        return ENCODE(
            {
                "connectorId": connector_id,
                "errorCode": "NoError",
                "status": wire,
                "timestamp": CLOCK.now(),
            }
        )

    def authorize(self, id_tag: str) -> bytes:
        return ENCODE({"idTag": id_tag})

    def start_transaction(self, tx: Transaction) -> bytes:
        payload: dict[str, Any] = {
            "connectorId": 1,
            "idTag": tx.id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": CLOCK.now(),
        }
        return ENCODE(payload)

    def stop_transaction(self, tx: Transaction, reason: str) -> dict[str, Any]:
        """A dict: ``transactionId`` is set when sent (the CSMS may not have answered the
        StartTransaction yet when the session ends, e.g. offline)."""
        return {
            "idTag": tx.id_tag,
            "meterStop": tx.energy_wh(),
            "timestamp": CLOCK.now(),
            "reason": reason,
        }

    def meter_template(self, tx: Transaction) -> tuple[bytes, bytes, bytes | None]:
        """(action, payload, None): periodic values, reusable for a second (the throughput
        scenario's cheap path); with the transaction id once the CSMS gave one."""
        action, payload = self.meter_values(tx, "Sample.Periodic")
        if tx.transaction_id is not None:
            payload["transactionId"] = tx.transaction_id
        return action, ENCODE(payload), None

    def meter_values(
        self, tx: Transaction, context: str, offline: bool = False
    ) -> tuple[bytes, dict[str, Any]]:
        """A dict: ``transactionId`` is set when sent (see ``stop_transaction``)."""
        sampled = [
            {
                "value": f"{value:g}",
                "context": context,
                "measurand": measurand,
                **({"phase": phase} if phase else {}),
                "location": location,
                "unit": unit,
            }
            for measurand, phase, location, unit, value in _readings(tx)
        ]
        return b"MeterValues", {
            "connectorId": 1,
            "meterValue": [{"timestamp": CLOCK.now(), "sampledValue": sampled}],
        }


class V2(Dialect):
    """2.0.1 and 2.1 (the payloads used here are the same in both)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def boot(self, serial: str, reason: str = "PowerUp") -> bytes:
        return ENCODE(
            {
                "reason": reason,
                "chargingStation": {
                    "model": "SimAC-22",
                    "vendorName": "SimVendor",
                    "serialNumber": serial[-25:],
                    "firmwareVersion": "1.4.2",
                },
            }
        )

    def status(self, connector_id: int, status: str) -> bytes:
        return ENCODE(
            {
                "timestamp": CLOCK.now(),
                "connectorStatus": status,
                "evseId": connector_id,
                "connectorId": 1,
            }
        )

    def authorize(self, id_tag: str) -> bytes:
        return ENCODE({"idToken": {"idToken": id_tag, "type": "ISO14443"}})

    def _sampled(self, tx: Transaction, context: str) -> list[dict[str, Any]]:
        return [
            {
                "value": value,
                "context": context,
                "measurand": measurand,
                **({"phase": phase} if phase else {}),
                "location": location,
                "unitOfMeasure": {"unit": unit},
            }
            for measurand, phase, location, unit, value in _readings(tx)
        ]

    def transaction_event(
        self,
        tx: Transaction,
        event_type: str,
        trigger: str,
        context: str | None = None,
        offline: bool = False,
        stopped_reason: str | None = None,
    ) -> bytes:
        info: dict[str, Any] = {"transactionId": tx.local_id}
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": CLOCK.now(),
            "triggerReason": trigger,
            "seqNo": tx.next_seq_no(),
            "transactionInfo": info,
        }
        if offline:
            payload["offline"] = True
        if event_type == "Started":
            info["chargingState"] = "Charging"
            payload["idToken"] = {"idToken": tx.id_tag, "type": "ISO14443"}
            payload["evse"] = {"id": 1, "connectorId": 1}
            if tx.remote_start_id is not None:
                info["remoteStartId"] = tx.remote_start_id
        if event_type == "Ended":
            info["stoppedReason"] = stopped_reason or "Local"
            info["chargingState"] = "Idle"
        if context is not None:
            payload["meterValue"] = [
                {"timestamp": CLOCK.now(), "sampledValue": self._sampled(tx, context)}
            ]
        return ENCODE(payload)

    def meter_template(self, tx: Transaction) -> tuple[bytes, bytes, bytes | None]:
        """(action, head, tail): periodic values reusable for a second (the throughput
        scenario's cheap path); the payload is head + seqNo + tail."""
        payload = msgspec.json.decode(
            self.transaction_event(tx, "Updated", "MeterValuePeriodic", "Sample.Periodic")
        )
        del payload["seqNo"]
        tx.seq_no -= 1
        return b"TransactionEvent", ENCODE(payload)[:-1] + b',"seqNo":', b"}"

    def meter_values(
        self, tx: Transaction, context: str, offline: bool = False
    ) -> tuple[bytes, bytes]:
        trigger = TRIGGERS.get(context, "MeterValuePeriodic")
        payload = self.transaction_event(tx, "Updated", trigger, context, offline)
        return b"TransactionEvent", payload


def dialect(version: str) -> V16 | V2:
    if version == "1.6":
        return V16()
    if version in ("2.0.1", "2.1"):
        return V2(version)
    raise ValueError(f"unknown OCPP version {version!r} (1.6, 2.0.1, 2.1)")
