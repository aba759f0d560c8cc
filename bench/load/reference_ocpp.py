"""The reference: a CSMS built the usual Python way, the ``ocpp`` package over ``websockets``.

    python -m bench.load.reference_ocpp --port PORT [--host 127.0.0.1] [--cert PEM --key PEM]

One ``ocpp.v16.ChargePoint`` per connection, the station id from the path, handlers for
BootNotification, Heartbeat, MeterValues, StatusNotification, Authorize, Start/StopTransaction;
schema validation as the package does it by default (jsonschema, in the default thread pool), on
the standard asyncio loop. Nothing is stored.
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


async def on_connect(websocket: ServerConnection) -> None:
    assert websocket.request is not None
    station_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
    with contextlib.suppress(ConnectionClosed):
        await ReferenceChargePoint(station_id, websocket).start()


async def run(host: str, port: int, context: ssl.SSLContext | None = None) -> None:
    protocols = [Subprotocol("ocpp1.6")]
    async with serve(on_connect, host, port, subprotocols=protocols, ssl=context) as server:
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
