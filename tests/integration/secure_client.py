"""Clients for the security tests: a raw HTTP upgrade (to see refusals exactly: status, headers,
or a TLS failure before any HTTP) and a picows station with Basic auth and/or TLS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import picows

from tests.integration.station import Station, _Listener


def basic(user: str, password: str | bytes) -> str:
    raw = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


def client_tls(
    ca_file: Path,
    cert: tuple[Path, Path] | None = None,
    *,
    max_tls12: bool = False,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(cert[0], cert[1])
    if max_tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


@dataclass
class Answer:
    """The server's answer to an upgrade request; ``status`` None: no HTTP came back at all
    (the TLS handshake or the connection failed first, ``error`` says how)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    during_tls_handshake: bool = False
    """The connection failed before the TLS handshake completed (no HTTP was possible)."""
    cipher: str | None = None
    """The TLS suite negotiated, if any."""


async def upgrade(
    port: int,
    path: str,
    *,
    subprotocol: str = "ocpp2.0.1",
    authorization: str | None = None,
    tls: ssl.SSLContext | None = None,
    local_address: str | None = None,
) -> Answer:
    """Send one WebSocket upgrade request and read the status line and headers."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {subprotocol}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    local = (local_address, 0) if local_address else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=tls,
                server_hostname="127.0.0.1" if tls else None,
                local_addr=local,
            ),
            10,
        )
    except (OSError, ssl.SSLError) as err:
        return Answer(None, error=f"{type(err).__name__}: {err}", during_tls_handshake=True)
    negotiated = writer.get_extra_info("cipher")
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as err:
        return Answer(None, error=f"{type(err).__name__}: {err}")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    cipher = negotiated[0] if negotiated else None
    return Answer(int(status_line.split(" ")[1]), headers, cipher=cipher)


async def connect(
    url: str,
    subprotocol: str = "ocpp2.0.1",
    *,
    authorization: str | None = None,
    tls: ssl.SSLContext | None = None,
    local_address: str | None = None,
) -> Station:
    """A picows test station that authenticated (raises if the upgrade is refused)."""
    headers = {"Sec-WebSocket-Protocol": subprotocol}
    if authorization is not None:
        headers["Authorization"] = authorization
    kwargs: dict[str, Any] = {"local_addr": (local_address, 0)} if local_address else {}
    transport, listener = await picows.ws_connect(
        _Listener, url, ssl_context=tls, extra_headers=headers, **kwargs
    )
    assert isinstance(listener, _Listener)
    return Station(
        transport, listener, transport.response.headers.get("Sec-WebSocket-Protocol", "")
    )
