"""The reference: a CSMS built the usual Python way, the ``ocpp`` package over ``websockets``.

    python -m bench.load.reference_ocpp --port PORT [--host 127.0.0.1] [--cert PEM --key PEM]

One ``ChargePoint`` of the ``ocpp`` package per connection, of the version the station asked for
(subprotocol ``ocpp1.6``, ``ocpp2.0.1`` or ``ocpp2.1``), the station id from the path. Handlers:
1.6 BootNotification, Heartbeat, MeterValues, StatusNotification, Authorize,
Start/StopTransaction; 2.x BootNotification, Heartbeat, StatusNotification, Authorize,
TransactionEvent, MeterValues. Schema validation as the package does it by default
(jsonschema, in the default thread pool), on the standard asyncio loop. Nothing is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import ssl
import sys
from typing import Any

from ocpp import v21, v201
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.load.tls import server_context

HEARTBEAT_INTERVAL_S = 300
TRANSACTION_IDS = itertools.count(1)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class ReferenceChargePoint(ChargePoint):  # type: ignore[misc]
    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    async def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time=_now(),
            interval=HEARTBEAT_INTERVAL_S,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    async def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    async def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on(Action.authorize)  # type: ignore[untyped-decorator]
    async def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)  # type: ignore[untyped-decorator]
    async def on_start_transaction(self, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=next(TRANSACTION_IDS),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)  # type: ignore[untyped-decorator]
    async def on_stop_transaction(self, **_: Any) -> call_result.StopTransaction:
        return call_result.StopTransaction()

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    async def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()


class V2Handlers:
    """The same handlers for 2.0.1 and 2.1 (``_call_result`` is the version's module)."""

    _call_result: Any

    @on("BootNotification")  # type: ignore[untyped-decorator]
    async def on_boot_notification(self, **_: Any) -> Any:
        return self._call_result.BootNotification(
            current_time=_now(), interval=HEARTBEAT_INTERVAL_S, status="Accepted"
        )

    @on("Heartbeat")  # type: ignore[untyped-decorator]
    async def on_heartbeat(self) -> Any:
        return self._call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")  # type: ignore[untyped-decorator]
    async def on_status_notification(self, **_: Any) -> Any:
        return self._call_result.StatusNotification()

    @on("Authorize")  # type: ignore[untyped-decorator]
    async def on_authorize(self, **_: Any) -> Any:
        return self._call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")  # type: ignore[untyped-decorator]
    async def on_transaction_event(self, **_: Any) -> Any:
        return self._call_result.TransactionEvent()

    @on("MeterValues")  # type: ignore[untyped-decorator]
    async def on_meter_values(self, **_: Any) -> Any:
        return self._call_result.MeterValues()


class Reference201ChargePoint(V2Handlers, v201.ChargePoint):  # type: ignore[misc]
    pass


class Reference21ChargePoint(V2Handlers, v21.ChargePoint):  # type: ignore[misc]
    pass


CHARGE_POINTS: dict[str | None, type[Any]] = {
    "ocpp1.6": ReferenceChargePoint,
    "ocpp2.0.1": Reference201ChargePoint,
    "ocpp2.1": Reference21ChargePoint,
}
SUBPROTOCOLS = [Subprotocol(name) for name in CHARGE_POINTS if name]


async def on_connect(websocket: ServerConnection) -> None:
    assert websocket.request is not None
    station_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
    charge_point = CHARGE_POINTS.get(websocket.subprotocol, ReferenceChargePoint)
    with contextlib.suppress(ConnectionClosed):
        await charge_point(station_id, websocket).start()


async def run(host: str, port: int, context: ssl.SSLContext | None = None) -> None:
    async with serve(on_connect, host, port, subprotocols=SUBPROTOCOLS, ssl=context) as server:
        scheme = "wss" if context else "ws"
        print(f"reference: OCPP on {scheme}://{host}:{port}/ocpp/{{stationId}}", flush=True)
        await server.serve_forever()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.reference_ocpp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve wss:// with this certificate (PEM) ...")
    parser.add_argument("--key", help="... and this key")
    args = parser.parse_args(argv)
    context = server_context(args.cert, args.key) if args.cert else None
    asyncio.run(run(args.host, args.port, context))


if __name__ == "__main__":
    main(sys.argv[1:])
