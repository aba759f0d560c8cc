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

Validity periods (A18): OpenSSL checks them during the handshake, before the URL (so the
station) is known, which leaves no room for a station allowed in with an expired certificate.
So, when the verified chain can be read after the handshake (:func:`verified_chain_supported`),
the context verifies signatures and the chain to the CSO CA without time
(``X509_V_FLAG_NO_CHECK_TIME``) and every connection's verified chain, leaf to trust anchor, is
read here (:class:`CertificateValidity`) for ``csms.gateway.auth`` to check against the clock:
refused with 401 after TLS instead of a TLS alert, except an expired leaf of a flagged station.
"""

from __future__ import annotations

import asyncio
import datetime
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

from csms.gateway.auth import CertificateValidity, ClientCertificate, Verdict
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

X509_V_FLAG_NO_CHECK_TIME = 0x200000
"""OpenSSL's flag (x509_vfy.h): verify the chain without checking validity periods. Python 3.11
has no name for it; ``ssl.VerifyFlags`` keeps unknown bits."""


def verified_chain_supported() -> bool:
    """Whether the verified chain of a TLS connection can be read after the handshake: the
    ``ssl_object`` aiofastnet hands over is its own engine (``get_verified_chain``, DER bytes) or,
    on its fallback engine, a stdlib ``SSLObject`` (public ``get_verified_chain`` from Python
    3.13; on 3.11 the private ``_sslobj.get_verified_chain``)."""
    private = getattr(getattr(ssl, "_ssl", None), "_SSLSocket", None)
    if not hasattr(ssl.SSLObject, "get_verified_chain") and not hasattr(
        private, "get_verified_chain"
    ):
        return False
    try:
        from aiofastnet.ssl_engine_direct import SSLEngineDirect  # type: ignore[import-not-found]
    except ImportError:
        return True  # aiofastnet uses the stdlib fallback
    return hasattr(SSLEngineDirect, "get_verified_chain")


_ENCODING_DER = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)
"""``_ssl.Certificate.public_bytes`` format (3.11's private chain items; 3.13 has the same)."""


def _verified_chain(ssl_object: Any) -> list[bytes] | None:
    """The verified chain (leaf first, trust anchor last) as DER, or None when it cannot be
    read (the caller refuses: never an exception out of ``connection_made``)."""
    getter = getattr(ssl_object, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if getter is None:
        return None
    try:
        chain = getter() or []
        return [c if isinstance(c, bytes) else bytes(c.public_bytes(_ENCODING_DER)) for c in chain]
    except (AttributeError, TypeError, ValueError, ssl.SSLError) as err:
        log.warning("verified chain not readable: %s", err)
        return None


def _periods(chain: list[bytes]) -> list[tuple[datetime.datetime, datetime.datetime]] | None:
    """(not before, not after) of each DER certificate, or None if one cannot be parsed."""
    from cryptography import x509  # a run-time dependency (csms.certificates)

    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as err:
        log.warning("verified chain not parsable: %s", err)
        return None
    return [(c.not_valid_before_utc, c.not_valid_after_utc) for c in certificates]


def certificate_validity(ssl_object: Any, leaf_der: bytes) -> CertificateValidity:
    """The validity periods of the connection's verified chain (A18); with unknown issuers (so
    a refusal) when the chain cannot be read or does not start with the peer's certificate."""
    chain = _verified_chain(ssl_object)
    periods = _periods(chain) if chain else None
    if periods is not None and chain is not None and chain[0] == leaf_der:
        return CertificateValidity(periods[0][0], periods[0][1], tuple(periods[1:]))
    leaf = _periods([leaf_der]) or [(_NEVER[1], _NEVER[0])]  # OpenSSL parsed it: not expected
    return CertificateValidity(leaf[0][0], leaf[0][1], None)


_NEVER = (
    datetime.datetime.min.replace(tzinfo=datetime.UTC),
    datetime.datetime.max.replace(tzinfo=datetime.UTC),
)


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
    reuse_port: bool = False
    """SO_REUSEPORT: several processes listen on one port and the kernel spreads new
    connections over them (``csms serve --workers``)."""


UpgradeCallback = Callable[[WSUpgradeRequest, Peer], Upgrade]
TlsFailureCallback = Callable[[str, BaseException], None]
"""(peer address, the error) of a failed TLS handshake: ``Authenticator.tls_failed``."""


def server_tls_context(
    certificates: Sequence[tuple[Path, Path]],
    ca_file: Path | None = None,
    require_client_certificate: bool = False,
    check_time_after_handshake: bool | None = None,
) -> ssl.SSLContext:
    """A server context for profiles 2/3: ``certificates`` are (cert chain, key) pairs.
    ``check_time_after_handshake`` (default: when :func:`verified_chain_supported`): client
    certificate chains are verified without time, the gateway checks the periods (A18)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_SUITES)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    for cert_file, key_file in certificates:
        context.load_cert_chain(cert_file, key_file)
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
        if check_time_after_handshake is None:
            check_time_after_handshake = verified_chain_supported()
            if not check_time_after_handshake:
                log.warning(
                    "the verified client chain cannot be read here: OpenSSL checks validity "
                    "periods, expired certificates fail TLS (no A18 exception)"
                )
        if check_time_after_handshake:
            context.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
            # A resumed session has no verified chain to check (OpenSSL verifies nothing then),
            # and the chain of the full handshake was never time-checked by OpenSSL: no
            # resumption (no TLS 1.2 or 1.3 tickets). After a gateway restart no ticket would
            # be valid anyway (the ticket key is per process), so a reconnect storm loses
            # nothing; a station reconnecting to a live gateway pays a full handshake.
            context.options |= ssl.OP_NO_TICKET
            context.num_tickets = 0
    return context


def checks_time_after_handshake(context: ssl.SSLContext) -> bool:
    """Whether ``context`` leaves the client certificates' validity periods to the gateway."""
    return bool(context.verify_flags & X509_V_FLAG_NO_CHECK_TIME)


def _client_certificate(ssl_object: Any, check_time: bool = False) -> ClientCertificate | None:
    """The peer's certificate; with ``check_time`` (the listener's context verified it without
    time) also its chain's validity periods, for the gateway to check (A18)."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    validity = certificate_validity(ssl_object, der) if check_time else None
    info = ssl_object.getpeercert() or {}
    names: dict[str, str] = {}
    for rdn in info.get("subject", ()):
        for key, value in rdn:
            names.setdefault(key, value)
    return ClientCertificate(
        common_name=names.get("commonName"),
        organization=names.get("organizationName"),
        fingerprint=hashlib.sha256(der).hexdigest(),
        validity=validity,
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

    __slots__ = (
        "_csms_admitted",
        "_csms_check_time",
        "_csms_peer",
        "_csms_pending",
        "_csms_upgrade",
        "_guard",
    )
    # no per-connection __dict__: memory per idle connection is a target

    def __init__(
        self,
        upgrade: UpgradeCallback,
        pending: PendingHandshakes,
        options: ListenerOptions,
        admitted: str | None = None,
        check_time: bool = False,
    ) -> None:
        self._csms_upgrade = upgrade
        self._csms_check_time = check_time
        """The TLS context verified client chains without time: read their periods (A18)."""
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
        certificate = (
            _client_certificate(ssl_object, self._csms_check_time)
            if ssl_object is not None
            else None
        )
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

        check_time = checks_time_after_handshake(tls)

        def make(address: str) -> _Connection:
            return _Connection(upgrade, pending, options, admitted=address, check_time=check_time)

        def factory() -> asyncio.BaseProtocol:
            return _TlsAcceptor(make, limits)

    server: asyncio.Server = await aiofastnet.create_server(
        loop, factory, host=host, port=port, backlog=LISTEN_BACKLOG,
        reuse_port=options.reuse_port or None,
    )  # fmt: skip
    return server
