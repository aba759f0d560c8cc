"""The ceiling: a bare picows server (uvloop) answering every CALL with a canned CALLRESULT.

    python -m bench.load.echo_server --port PORT [--host 127.0.0.1] [--cert PEM --key PEM]

Any OCPP version (the first subprotocol offered is accepted).
``[2,"<id>",...]`` is answered ``[3,"<id>",{}]`` (a BootNotification with a canned Accepted): the
id is cut out of the bytes, nothing is parsed, validated or stored. What no Python WebSocket
server on one core can beat by much.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

import picows
import uvloop
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from bench.load.tls import server_context

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
CALL_HEAD = b'[2,"'
BOOT = b'"BootNotification"'
BOOT_ANSWER = b'{"currentTime":"2026-01-01T00:00:00Z","interval":300,"status":"Accepted"}'
"""A canned Accepted (the boot storm counts Accepted answers); every other CALL gets ``{}``."""


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            if data.startswith(CALL_HEAD):
                end = data.find(b'"', 4)
                answer = BOOT_ANSWER if data.startswith(BOOT, end + 2) else b"{}"
                transport.send(WSMsgType.TEXT, b'[3,"' + data[4:end] + b'",' + answer + b"]")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def upgrade(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
    """Accept the first OCPP version the station offers (1.6 if it offers none we know)."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    names = [name.strip() for name in offered.split(",")]
    chosen = next((name for name in names if name in SUBPROTOCOLS), "ocpp1.6")
    response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Protocol": chosen})
    return WSUpgradeResponseWithListener(response, Echo())


async def serve(host: str, port: int, context: ssl.SSLContext | None = None) -> None:
    server = await picows.ws_create_server(
        upgrade, host, port, ssl=context, read_buffer_init_size=4096
    )
    scheme = "wss" if context else "ws"
    print(f"echo: OCPP on {scheme}://{host}:{port}/ocpp/{{stationId}}", flush=True)
    async with server:
        await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.echo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve wss:// with this certificate (PEM) ...")
    parser.add_argument("--key", help="... and this key")
    args = parser.parse_args(argv)
    context = server_context(args.cert, args.key) if args.cert else None
    uvloop.run(serve(args.host, args.port, context))


if __name__ == "__main__":
    main(sys.argv[1:])
