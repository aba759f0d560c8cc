"""Station certificate renewal over OCPP (A02, security profile 3): the CSMS asks, the station
sends a CSR, the CSMS signs it with the CSO CA and sends the certificate back.

The flow (:func:`renew_certificate`, ``csms stations renew-certificate``):

1. the registry marks the renewal (``csr_expected``): the gateway's SignCertificate handler
   answers Accepted from now on (``csms.handlers.services.sign_certificate``);
2. TriggerMessage ``SignChargingStationCertificate`` (2.x) or ExtendedTriggerMessage
   ``SignChargePointCertificate`` (1.6 security extension) through the command router;
3. the station's SignCertificate CALL is read off its subject (the gateway stored it, with our
   answer, before answering); the CSR is checked (signature, CN = the registered serial) and
   signed (:class:`CertificateAuthority`);
4. the new certificate is staged in the registry: it works alongside the old one;
5. CertificateSigned; Accepted → the new certificate becomes the registered one, pinned by its
   fingerprint, so the old one stops working (A02.FR.*: the old credential keeps working until
   the station accepted the new one); anything else → the new one is forgotten.

The same flow starts by itself for a station let in with an expired certificate (A18,
:class:`ExpiredCertificateRenewals`).

Needs ``cryptography`` at run time (only when signing is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from csms.domain.commands import CommandOutcome, CommandRequest
from streams import envelope
from streams.commands import CommandRouter
from streams.presence import PresenceReader
from streams.registry import StationRegistry
from streams.subjects import subject

log = logging.getLogger(__name__)

DEFAULT_VALIDITY_DAYS = 365

TRIGGERS: dict[str, tuple[str, dict[str, Any]]] = {
    "1.6": ("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}),
    "2.0.1": ("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
    "2.1": ("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
}
"""The CALL that makes a station send its CSR, per version."""


class RenewalError(ValueError):
    """The renewal could not go on (the message says why); the old certificate stays."""


@dataclass(frozen=True, slots=True)
class Signed:
    chain_pem: str
    """The station certificate, then the CA certificate (PEM)."""
    common_name: str
    fingerprint: str
    """SHA-256 of the DER encoding, lower-case hex (as the gateway computes it)."""


class CertificateAuthority:
    """The CSO CA that signs station certificates (its certificate is also the gateway's
    ``tls_ca_file``, against which profile-3 stations are verified)."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        organization: str | None = None,
        validity_days: int = DEFAULT_VALIDITY_DAYS,
    ) -> None:
        self.cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: an RSA or EC key is needed")
        self.key = key
        self.organization = organization
        self.validity_days = validity_days

    def sign(self, csr_pem: str, serial: str | None) -> Signed:
        """Check the CSR (well-formed, self-signature valid, CN = ``serial`` when the station
        has one registered, O = the CSO when configured) and issue a client certificate."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as err:
            raise RenewalError(f"the CSR is not a PEM certificate request: {err}") from err
        if not csr.is_signature_valid:
            raise RenewalError("the CSR's signature is not valid")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else ""
        if not common_name or (serial is not None and common_name != serial):
            raise RenewalError(f"the CSR's CN {common_name!r} is not the registered serial")
        orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if self.organization is not None and (not orgs or orgs[0].value != self.organization):
            raise RenewalError(f"the CSR's O is not {self.organization!r}")
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=self.validity_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM)
        chain += self.cert.public_bytes(serialization.Encoding.PEM)
        return Signed(chain.decode(), common_name, cert.fingerprint(hashes.SHA256()).hex())


def _status(outcome: CommandOutcome) -> str:
    """The station's status, or the command's outcome when it did not answer one."""
    if outcome.outcome == "answered" and outcome.result is not None:
        return str(outcome.result.get("status"))
    return outcome.outcome


@contextlib.asynccontextmanager
async def _csr_of(nc: NatsClient, station_id: str) -> AsyncIterator[asyncio.Future[str]]:
    """The CSR of the next SignCertificate the station sends, as the gateway published it
    (the CALL and our answer in one message; only an Accepted one counts)."""
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    calls: dict[str, str] = {}

    async def on_message(msg: Msg) -> None:
        for event in envelope.decode_many(msg.data):
            if event.kind != "frame" or found.done():
                continue
            if event.direction == "in" and event.action == "SignCertificate":
                calls[event.unique_id or ""] = event.raw
            elif event.direction == "out" and event.unique_id in calls:
                answer = json.loads(event.raw)
                call = json.loads(calls.pop(event.unique_id or ""))
                if answer[2].get("status") == "Accepted":
                    found.set_result(str(call[3]["csr"]))
                else:
                    found.set_exception(RenewalError("SignCertificate was not Accepted"))

    sub = await nc.subscribe(subject(station_id), cb=on_message)
    try:
        yield found
    finally:
        await sub.unsubscribe()


async def renew_certificate(
    nc: NatsClient,
    registry: StationRegistry,
    presence: PresenceReader,
    authority: CertificateAuthority,
    identity: str,
    timeout_s: float = 60.0,
    requested_by: str = "csms stations renew-certificate",
) -> tuple[str, Signed | None]:
    """Renew a connected profile-3 station's certificate (the module docstring); returns the
    station's answer to CertificateSigned (or why it stopped) and what was signed."""
    record = await registry.get(identity)
    if record is None:
        raise RenewalError(f"{identity} is not registered")
    where = await presence.find(identity)
    if where is None or not where.connected:
        raise RenewalError(f"{identity} is not connected")
    router = CommandRouter(nc, presence)

    async def send(action: str, payload: dict[str, Any]) -> str:
        request = CommandRequest(
            command_id=uuid.uuid4().hex,
            station_id=where.station_id,
            action=action,
            payload=payload,
            timeout_s=timeout_s,
            requested_by=requested_by,
        )
        return _status(await router.send(request))

    signed: Signed | None = None
    settled = False
    await registry.expect_csr(identity, True)
    try:
        async with _csr_of(nc, where.station_id) as csr:
            trigger, payload = TRIGGERS[where.ocpp_version]
            answer = await send(trigger, payload)
            if answer != "Accepted":
                return f"{trigger}: {answer}", None
            signed = authority.sign(await asyncio.wait_for(csr, timeout_s), record.cert_serial)
        await registry.stage_certificate(identity, signed.common_name, signed.fingerprint)
        chain: dict[str, Any] = {"certificateChain": signed.chain_pem}
        if where.ocpp_version != "1.6":
            chain["certificateType"] = "ChargingStationCertificate"
        answer = await send("CertificateSigned", chain)
        await registry.settle_certificate(identity, accepted=answer == "Accepted")
        settled = True
        return answer, signed
    except TimeoutError as err:
        raise RenewalError("the station sent no certificate signing request in time") from err
    finally:
        if not settled:
            await registry.settle_certificate(identity, accepted=False)


class ExpiredCertificateRenewals:
    """A18 (A00.FR.429/430): a station let in with its expired certificate (flagged
    ``allow_expired_certificate``, answered BootNotification Pending) gets the A02 renewal at
    once, started by the gateway that holds it (``Gateway.on_probation``). One renewal per
    station at a time: a reconnect during a renewal (its trigger or CertificateSigned went to
    the closed connection) cancels it (its clean-up revokes what it had signed) and starts
    another on the new connection. Once the station accepted the new certificate the registry
    clears the flag (``StationRegistry.settle_certificate``) and its probation connection, which
    stays Pending for as long as it lives, is closed: the station reconnects with the new
    certificate and is answered Accepted. On any other outcome the connection stays Pending
    (logged); the operator may retry with ``csms stations renew-certificate``."""

    def __init__(
        self,
        nc: NatsClient,
        registry: StationRegistry,
        presence: PresenceReader,
        authority: CertificateAuthority,
        published: Callable[[], Awaitable[object]],
        timeout_s: float = 60.0,
    ) -> None:
        self.nc = nc
        self.registry = registry
        self.presence = presence
        self.authority = authority
        self.published = published
        """Waits until the gateway's presence writes are applied (the command router finds
        the new session by its presence)."""
        self.timeout_s = timeout_s
        self.tasks: dict[str, asyncio.Task[str | None]] = {}

    def start(self, station_id: str, renewed: Callable[[], None]) -> None:
        """Renew ``station_id``'s certificate in the background; ``renewed`` is called once
        the station accepted the new one (the gateway closes the probation connection)."""
        previous = self.tasks.get(station_id)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self._renew(station_id, renewed, previous))
        self.tasks[station_id] = task

        def forget(done: asyncio.Task[str | None]) -> None:
            if self.tasks.get(station_id) is done:
                del self.tasks[station_id]

        task.add_done_callback(forget)

    async def _renew(
        self,
        station_id: str,
        renewed: Callable[[], None],
        previous: asyncio.Task[str | None] | None = None,
    ) -> str | None:
        try:
            if previous is not None:  # its clean-up (settle_certificate) before our first write
                await asyncio.gather(previous, return_exceptions=True)
            await self.published()
            answer, signed = await renew_certificate(
                self.nc, self.registry, self.presence, self.authority, station_id,
                self.timeout_s, requested_by="csms gateway: expired certificate (A18)",
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a background task: say why, keep the gateway
            log.warning("A18 renewal of %s failed: %s", station_id, err)
            return None
        if answer == "Accepted" and signed is not None:
            log.info("A18 renewal of %s: new certificate %s", station_id, signed.fingerprint)
            renewed()
        else:
            log.warning("A18 renewal of %s: %s; the station stays Pending", station_id, answer)
        return answer

    async def stop(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
