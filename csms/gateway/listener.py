"""The sockets under the gateway: plain and TLS listeners that know their peer.

``picows.ws_create_server`` hands the upgrade callback only the HTTP request; authentication
needs the peer address (failure throttling, the pending-handshake cap) and the client certificate
(profile 3). So we build the listener ourselves the way picows 2.3 does (``WSProtocol`` with the
same arguments, on aiofastnet as picows does) and subclass ``WSProtocol`` to capture both in
``connection_made``, which runs after the TLS handshake. Pinned picows: re-check the
``WSProtocol`` constructor when upgrading it.

TLS (profiles 2 and 3, reliability.md §2.3): TLS 1.2 or 1.3 only; for 1.2 the four mandated
suites (ECDHE-ECDSA and RSA with AES-GCM) plus their ECDHE-RSA forms, nothing CBC/RC4/3DES/NULL;
no compression. An RSA and an EC certificate may both be loaded so that all four suites work.
With a CSO CA, client certificates are verified against it (optional: profile 2 stations have
none; or required: a profile-3-only listener, A00.FR.006).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiofastnet  # picows' own transport layer (a dependency of picows 2.3)
from picows import WSAutoPingStrategy, WSUpgradeRequest, WSUpgradeResponse
from picows import WSUpgradeResponseWithListener as Upgrade
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from csms.gateway.auth import ClientCertificate, Verdict
from csms.gateway.limits import HandshakeRate, PendingHandshakes

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096
"""Accept queue depth. The library default (100) overflowed when 10,000 stations connected at
once (kernel ListenOverflows, stations timing out; issue 6's boot storm); the kernel caps it at
net.core.somaxconn."""

TLS12_SUITES = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    ]
)
"""A00.FR.318: the four mandated suites (+ ECDHE-RSA: forward secrecy for RSA certificates)."""


@dataclass(frozen=True, slots=True)
class Peer:
    address: str = ""
    tls: bool = False
    certificate: ClientCertificate | None = None


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    handshake_timeout_s: float
    ping_interval_s: float
    ping_timeout_s: float
    max_frame_bytes: int
    read_buffer_bytes: int
    auto_ping: bool = False
    """picows' own keep-alive (a task per connection); off: the gateway's sweeper pings."""
    auto_pong: bool = True
    """picows answers every ping; off: the session answers them within a ``PingBudget``."""


UpgradeCallback = Callable[[WSUpgradeRequest, Peer], Upgrade]
TlsFailureCallback = Callable[[str, BaseException], None]
"""(peer address, the error) of a failed TLS handshake: ``Authenticator.tls_failed``."""


def server_tls_context(
    certificates: Sequence[tuple[Path, Path]],
    ca_file: Path | None = None,
    require_client_certificate: bool = False,
) -> ssl.SSLContext:
    """A server context for profiles 2/3: ``certificates`` are (cert chain, key) pairs."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_SUITES)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    for cert_file, key_file in certificates:
        context.load_cert_chain(cert_file, key_file)
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return context


def _client_certificate(ssl_object: Any) -> ClientCertificate | None:
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    info = ssl_object.getpeercert() or {}
    names: dict[str, str] = {}
    for rdn in info.get("subject", ()):
        for key, value in rdn:
            names.setdefault(key, value)
    return ClientCertificate(
        common_name=names.get("commonName"),
        organization=names.get("organizationName"),
        fingerprint=hashlib.sha256(der).hexdigest(),
    )


def refusal(verdict: Verdict, realm: str) -> Upgrade:
    """The HTTP answer to a refused upgrade (the connection is closed after it)."""
    headers: dict[str, str] = {}
    if verdict.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
    elif verdict.status == 429:
        headers["Retry-After"] = "60"
    body = b"unauthorized" if verdict.status == 401 else verdict.reason.encode()
    response = WSUpgradeResponse.create_error_response(verdict.status, body, headers)
    return Upgrade(response, None)


class _Dropped(asyncio.Protocol):
    """What a connection refused at the pending cap talks to until it is aborted."""

    def data_received(self, data: bytes) -> None:
        pass


class _Connection(WSProtocol):  # type: ignore[misc]
    """picows' protocol plus: the peer for the upgrade callback, the pending-handshake cap."""

    __slots__ = ("_csms_admitted", "_csms_peer", "_csms_pending", "_csms_upgrade", "_guard")
    # no per-connection __dict__: memory per idle connection is a target

    def __init__(
        self,
        upgrade: UpgradeCallback,
        pending: PendingHandshakes,
        options: ListenerOptions,
        admitted: str | None = None,
    ) -> None:
        self._csms_upgrade = upgrade
        self._csms_pending = pending
        self._csms_admitted = admitted
        """The address, when the TLS acceptor already counted this connection as pending."""
        self._csms_peer = Peer()
        self._guard = "new"  # new → pending → requested | refused
        super().__init__(
            None,  # host+port (client side only)
            None,  # ws path (client side only)
            False,  # server side
            self._on_request,
            logging.getLogger("picows.server"),
            True,  # disconnect on exception in on_ws_frame
            options.handshake_timeout_s,
            options.auto_ping,
            options.ping_interval_s,
            options.ping_timeout_s,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            options.auto_pong,
            options.max_frame_bytes,
            None,  # extra headers
            options.read_buffer_bytes,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        address = self._csms_admitted or (str(peername[0]) if peername else "")
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = _client_certificate(ssl_object) if ssl_object is not None else None
        self._csms_peer = Peer(address, ssl_object is not None, certificate)
        if self._csms_admitted is None and not self._csms_pending.admit(address):
            log.warning("too many pending handshakes from %s; connection dropped", address)
            self._guard = "refused"
            # Not abort() here: aiofastnet registers the socket's reader right after
            # connection_made whatever it did, so an abort from inside it leaves a reader on a
            # closed descriptor, and the next connection given that number is never read (it
            # hung until the handshake timeout: bench.abuse.cap_refusal). Abort on the next
            # turn, once the reader is there to be removed; a sink protocol drops any bytes.
            transport.set_protocol(_Dropped())
            asyncio.get_running_loop().call_soon(transport.abort)  # type: ignore[attr-defined]
            return
        self._guard = "pending"
        super().connection_made(transport)

    def _on_request(self, request: WSUpgradeRequest) -> Upgrade:
        if self._guard == "pending":
            self._guard = "requested"
            self._csms_pending.release(self._csms_peer.address)
        return self._csms_upgrade(request, self._csms_peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard in ("new", "refused"):  # never connected (a failed TLS handshake) or
            return  # dropped at once: picows has nothing to clean up
        if self._guard == "pending":
            self._guard = "requested"
            self._csms_pending.release(self._csms_peer.address)
        super().connection_lost(exc)


class _TlsAcceptor(asyncio.Protocol):
    """TCP first, TLS second: a connection is counted (pending cap, per-address handshake rate)
    before its TLS handshake costs us anything, and a failed handshake is logged with the peer's
    address. After the handshake the picows protocol takes over the TLS transport."""

    def __init__(self, make: Callable[[str], _Connection], limits: _TlsLimits) -> None:
        self._make = make
        self._limits = limits
        self._address = ""
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        self._address = str(peername[0]) if peername else ""
        limits = self._limits
        if not limits.rate.allow(self._address) or not limits.pending.admit(self._address):
            log.warning("TLS connection from %s dropped: handshake rate or cap", self._address)
            # On the next turn, as in _Connection.connection_made: an abort from inside
            # connection_made leaves aiofastnet's reader on a closed descriptor.
            asyncio.get_running_loop().call_soon(transport.abort)  # type: ignore[attr-defined]
            return
        self._counted = True
        transport.pause_reading()  # type: ignore[attr-defined]  # the ClientHello is TLS's
        asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, transport: asyncio.BaseTransport) -> None:
        connection = self._make(self._address)
        try:
            tls_transport = await aiofastnet.start_tls(
                asyncio.get_running_loop(),
                transport,
                connection,
                self._limits.context,
                server_side=True,
                ssl_handshake_timeout=self._limits.timeout_s,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as err:
            log.info("TLS handshake from %s failed: %s", self._address, err)
            transport.abort()  # type: ignore[attr-defined]
            self._release()
            if self._limits.on_failure is not None:
                self._limits.on_failure(self._address, err)  # a sampled security event
            return
        self._counted = False  # the picows protocol releases it at the upgrade request
        connection.connection_made(tls_transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()  # the peer left during the handshake

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self._limits.pending.release(self._address)


@dataclass(frozen=True, slots=True)
class _TlsLimits:
    context: ssl.SSLContext
    pending: PendingHandshakes
    rate: HandshakeRate
    timeout_s: float
    on_failure: TlsFailureCallback | None = None


async def listen(
    upgrade: UpgradeCallback,
    host: str,
    port: int,
    options: ListenerOptions,
    pending: PendingHandshakes,
    tls: ssl.SSLContext | None = None,
    rate: HandshakeRate | None = None,
    on_tls_failure: TlsFailureCallback | None = None,
) -> asyncio.Server:
    """A WebSocket listener whose upgrade callback also receives the :class:`Peer`; with
    ``tls``, TLS handshakes per address are rate-limited and count as pending handshakes, and
    a failed one is reported to ``on_tls_failure``."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        return _Connection(upgrade, pending, options)

    if tls is not None:
        limits = _TlsLimits(
            tls, pending, rate or HandshakeRate(), options.handshake_timeout_s, on_tls_failure
        )

        def make(address: str) -> _Connection:
            return _Connection(upgrade, pending, options, admitted=address)

        def factory() -> asyncio.BaseProtocol:
            return _TlsAcceptor(make, limits)

    server: asyncio.Server = await aiofastnet.create_server(
        loop, factory, host=host, port=port, backlog=LISTEN_BACKLOG
    )
    return server
