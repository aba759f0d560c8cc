"""Certificate renewal over OCPP (A02; 2.0.1 and the 1.6 security extension) end to end: a real
CSMS on TLS, a profile-3 station with a certificate made here, the renewal driven as
``csms stations renew-certificate`` drives it. The rule under test: the old certificate keeps
working until the station accepted the new one, and stops working then."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.certificates import CertificateAuthority, RenewalError, renew_certificate
from csms.gateway.auth import ClientCertificate, Handshake
from csms.handlers.context import HandlerContext
from streams.embedded import EmbeddedNats
from streams.presence import PresenceReader
from streams.presence import open_bucket as open_presence
from streams.registry import StationRegistry
from tests.integration.pki import CSO, Issued, fingerprint
from tests.integration.secure_client import client_tls, connect, upgrade
from tests.integration.station import Station
from tests.integration.test_security import Secure, make_pki, start_secure
from tests.integration.test_station_registry import stations

SERIAL = "SN-0003"  # the CN of the fixture's profile-3 station (SP3)


@pytest.fixture
async def secure(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Secure]:
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    assert running.registry is not None
    # What `csms serve` does with tls_ca_key_file set: the SignCertificate handler reads the
    # registry's renewal marks (app.py wiring: see the session report; set here explicitly).
    plain = running.gateway.context_for
    registry: StationRegistry = running.registry

    def with_certificates(station_id: str, version: str) -> HandlerContext:
        return dataclasses.replace(plain(station_id, version), certificates=registry)

    running.gateway.context_for = with_certificates
    yield Secure(running, pki, nats_server.url)
    await running.stop()


def authority(secure: Secure, tmp_path: Path) -> CertificateAuthority:
    key_file = tmp_path / "cso-ca.key"
    key_file.write_bytes(
        secure.pki.ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertificateAuthority(secure.pki.ca.cert_file, key_file, CSO)


def csr_for(common_name: str, key_file: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CSO),
        ]
    )
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def decides(secure: Secure, cert_file: Path) -> int:
    """The gateway's own decision for SP3 presenting this certificate (its registry copy),
    without opening a connection that would replace the live session (A25)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    common_name = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    presented = ClientCertificate(common_name, CSO, cert.fingerprint(hashes.SHA256()).hex())
    auth = secure.running.gateway.auth
    assert auth is not None
    hs = Handshake("SP3", "127.0.0.9", None, tls=True, certificate=presented)
    return auth.decide(hs).status


def renewal_trigger(subprotocol: str) -> list[Any]:
    """The action and payload of the CALL that starts a renewal (A02) in ``subprotocol``."""
    if subprotocol == "ocpp1.6":
        return ["ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}]
    return ["TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}]


async def answer(station: Station, call: list[Any], payload: dict[str, Any]) -> None:
    station.send_text(json.dumps([3, call[1], payload]))


async def until(condition: Callable[[], bool], registry: StationRegistry) -> None:
    async def wait() -> None:
        while not condition():
            await registry.changed()

    await asyncio.wait_for(wait(), 10)


@pytest.mark.parametrize(
    ("subprotocol", "status"),
    [("ocpp2.0.1", "Accepted"), ("ocpp2.0.1", "Rejected"), ("ocpp1.6", "Accepted")],
)
async def test_a02_renewal_switches_only_after_the_station_accepted(
    secure: Secure, tmp_path: Path, subprotocol: str, status: str
) -> None:
    registry = secure.running.registry
    assert registry is not None
    assert secure.running.presence is not None
    old = secure.pki.station3
    station = await connect(secure.url("SP3", tls=True), subprotocol, tls=secure.tls(old))
    await secure.running.presence.flush()
    presence = PresenceReader(await open_presence(secure.running.nc.jetstream()))
    renewal = asyncio.create_task(
        renew_certificate(secure.running.nc, registry, presence, authority(secure, tmp_path),
                          "SP3", timeout_s=10)
    )  # fmt: skip

    trigger = await station.receive()
    assert trigger[2:] == renewal_trigger(subprotocol)
    await answer(station, trigger, {"status": "Accepted"})
    new_key = tmp_path / "new.key"
    signed = await station.call("SignCertificate", {"csr": csr_for(SERIAL, new_key)})
    assert signed[2] == {"status": "Accepted"}

    delivered = await station.receive()
    assert delivered[2] == "CertificateSigned"
    assert ("certificateType" in delivered[3]) == (subprotocol != "ocpp1.6")
    new_file = tmp_path / "new.pem"
    new_file.write_text(delivered[3]["certificateChain"])
    new = Issued(new_file, new_key)
    # Until the station has answered, both certificates are accepted.
    await until(lambda: registry.lookup("SP3").pending_cert_fingerprint is not None, registry)  # type: ignore[union-attr]
    assert (decides(secure, old.cert_file), decides(secure, new.cert_file)) == (101, 101)

    await answer(station, delivered, {"status": status})
    outcome, issued = await renewal
    assert outcome == status
    assert issued is not None
    assert issued.fingerprint == fingerprint(new)
    record = registry.lookup("SP3")
    assert record is not None
    assert not record.csr_expected
    await station.close()
    # Real TLS handshakes now: the old certificate stops only if the new one was accepted.
    port = secure.tls_port
    tls_old = client_tls(secure.pki.ca.cert_file, (old.cert_file, old.key_file))
    tls_new = client_tls(secure.pki.ca.cert_file, (new.cert_file, new.key_file))
    old_ok = await upgrade(port, "/ocpp/SP3", subprotocol=subprotocol, tls=tls_old)
    new_ok = await upgrade(port, "/ocpp/SP3", subprotocol=subprotocol, tls=tls_new)
    if status == "Accepted":
        assert (old_ok.status, new_ok.status) == (401, 101)
        assert record.cert_fingerprint == issued.fingerprint
    else:
        assert (old_ok.status, new_ok.status) == (101, 401)
        assert record.cert_fingerprint is None
        assert record.pending_cert_fingerprint is None
        assert record.revoked_fingerprints == (issued.fingerprint,)


async def test_a03_unsolicited_sign_certificate_is_rejected(secure: Secure, tmp_path: Path) -> None:
    """No renewal under way (or the wrong CN): Rejected, and nothing changes in the registry."""
    station = await connect(secure.url("SP3", tls=True), tls=secure.tls(secure.pki.station3))
    csr = csr_for(SERIAL, tmp_path / "k.key")
    assert (await station.call("SignCertificate", {"csr": csr}))[2] == {"status": "Rejected"}
    await station.close()
    registry = secure.running.registry
    assert registry is not None
    record = registry.lookup("SP3")
    assert record is not None
    assert record.pending_cert_fingerprint is None


async def test_a02_a_csr_for_another_serial_is_refused(secure: Secure, tmp_path: Path) -> None:
    registry = secure.running.registry
    assert registry is not None
    assert secure.running.presence is not None
    station = await connect(secure.url("SP3", tls=True), tls=secure.tls(secure.pki.station3))
    await secure.running.presence.flush()
    presence = PresenceReader(await open_presence(secure.running.nc.jetstream()))
    renewal = asyncio.create_task(
        renew_certificate(secure.running.nc, registry, presence, authority(secure, tmp_path),
                          "SP3", timeout_s=10)
    )  # fmt: skip
    trigger = await station.receive()
    await answer(station, trigger, {"status": "Accepted"})
    csr = csr_for("SN-9999", tmp_path / "k.key")
    assert (await station.call("SignCertificate", {"csr": csr}))[2] == {"status": "Accepted"}
    with pytest.raises(RenewalError, match="not the registered serial"):
        await renewal
    record = registry.lookup("SP3")
    assert record is not None
    assert not record.csr_expected
    assert record.pending_cert_fingerprint is None
    assert record.cert_serial == SERIAL
    await station.close()


async def test_cli_needs_the_ca(nats_server: EmbeddedNats) -> None:
    code, out = await stations(nats_server.url, "renew-certificate", "SP3")
    assert code == 2
    assert "--ca-cert and --ca-key" in out
