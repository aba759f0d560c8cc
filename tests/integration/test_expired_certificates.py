"""A18 (A00.FR.429/430) end to end: a profile-3 station whose certificate expired is refused,
unless the operator flagged it (``csms stations allow-expired-certificate``); then it is let in,
answered BootNotification Pending, and its certificate renewed over OCPP (A02) by the CSMS on its
own. Real sockets, a real nats-server, certificates made here; ``csms serve``'s wiring (the CA
key configured, so the renewal can be signed)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from csms.gateway.auth import EXPIRED_CERTIFICATE_ACCEPTED, INVALID_CERTIFICATE
from streams.embedded import EmbeddedNats
from streams.registry import StationRegistry
from tests.integration.api_support import api_client
from tests.integration.conftest import read_all_events
from tests.integration.pki import Authority, Issued, fingerprint
from tests.integration.secure_client import basic, connect, upgrade
from tests.integration.station import Station
from tests.integration.test_certificate_renewal import SERIAL, csr_for, renewal_trigger, until
from tests.integration.test_security import (
    P2,
    Secure,
    assert_401,
    make_pki,
    refused_events,
    start_secure,
)
from tests.integration.test_station_registry import stations

BOOTS: dict[str, dict[str, Any]] = {
    "ocpp2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
    "ocpp1.6": {"chargePointVendor": "V", "chargePointModel": "M"},
}


@pytest.fixture
async def renewing(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Secure]:
    """The security fixture with the CSO CA's key configured (``tls_ca_key_file``): the CSMS
    can renew certificates, so a flagged station may come in with an expired one."""
    pki = make_pki(tmp_path / "pki")
    key_file = tmp_path / "cso-ca.key"
    key_file.write_bytes(
        pki.ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    running = await start_secure(tmp_path, nats_server, pki, ca_key_file=key_file)
    yield Secure(running, pki, nats_server.url)
    await running.stop()


@pytest.fixture
async def without_ca_key(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Secure]:
    """The security fixture as it is: no CA key, so no renewal is possible."""
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    yield Secure(running, pki, nats_server.url)
    await running.stop()


async def flag(secure: Secure, allowed: bool = True) -> StationRegistry:
    registry = secure.running.registry
    assert registry is not None
    await registry.allow_expired_certificate("SP3", allowed)
    return registry


async def security_reasons(secure: Secure, station_id: str) -> list[str]:
    """The security events of a station that has frames too (the recorder stores them in the
    background: read until one is there)."""
    for _ in range(50):
        events = await read_all_events(secure.nats_url, station_id)
        reasons = [e.reason or "" for e in events if e.kind == "security"]
        if reasons:
            return reasons
    raise AssertionError(f"no security event for {station_id}")


async def test_a18_expired_certificate_not_flagged_is_refused(renewing: Secure) -> None:
    """The CA key alone changes nothing: without the flag, 401 and the event."""
    cert = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    assert_401(await upgrade(renewing.tls_port, "/ocpp/SP3", tls=renewing.tls(cert)))
    reasons = await refused_events(renewing.nats_url, "sp3")
    assert reasons == [
        f"{INVALID_CERTIFICATE}: HTTP 401, profile 3, from 127.0.0.1: "
        "client certificate: certificate has expired"
    ]
    assert "sp3" not in renewing.running.gateway.sessions


async def boot_pending_and_trigger(station: Station, subprotocol: str) -> list[Any]:
    """Send the BootNotification; the CSMS answers Pending and (in either order: the renewal
    starts when the connection opens) sends the renewal's trigger, which is returned."""
    station.send_text(json.dumps([2, "boot-1", "BootNotification", BOOTS[subprotocol]]))
    frames = [await station.receive(), await station.receive()]
    boot = [f for f in frames if f[0] == 3]
    trigger = [f for f in frames if f[0] == 2]
    assert len(boot) == 1, frames
    assert len(trigger) == 1, frames
    assert boot[0][1] == "boot-1"
    assert boot[0][2]["status"] == "Pending"
    return trigger[0]


@pytest.mark.parametrize("subprotocol", ["ocpp2.0.1", "ocpp1.6"])
async def test_a18_flagged_station_is_pending_until_its_certificate_is_renewed(
    renewing: Secure, tmp_path: Path, subprotocol: str
) -> None:
    registry = await flag(renewing)
    expired = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    station = await connect(renewing.url("SP3", tls=True), subprotocol,
                            tls=renewing.tls(expired))  # fmt: skip

    trigger = await boot_pending_and_trigger(station, subprotocol)
    assert trigger[2:] == renewal_trigger(subprotocol)
    station.send_text(json.dumps([3, trigger[1], {"status": "Accepted"}]))
    new_key = tmp_path / "new.key"
    # Pending (1.6: any CALL but the boot gets SecurityError) does not stop the triggered CSR.
    signed = await station.call("SignCertificate", {"csr": csr_for(SERIAL, new_key)})
    assert signed[2] == {"status": "Accepted"}
    delivered = await station.receive()
    assert delivered[2] == "CertificateSigned"
    new_file = tmp_path / "new.pem"
    new_file.write_text(delivered[3]["certificateChain"])
    new = Issued(new_file, new_key)
    station.send_text(json.dumps([3, delivered[1], {"status": "Accepted"}]))

    # The station accepted: the probation connection is closed (it would stay Pending), the
    # new certificate is the registered one and the flag has served its purpose.
    await asyncio.wait_for(station.listener.closed.wait(), 10)
    await until(lambda: registry.lookup("SP3").cert_fingerprint is not None, registry)  # type: ignore[union-attr]
    record = registry.lookup("SP3")
    assert record is not None
    assert record.cert_fingerprint == fingerprint(new)
    assert not record.allow_expired_certificate
    station_id = "SP3" if subprotocol == "ocpp1.6" else "sp3"  # 1.6 keeps the case
    reasons = await security_reasons(renewing, station_id)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{EXPIRED_CERTIFICATE_ACCEPTED}: HTTP 101, profile 3, from")

    # It reconnects with the new certificate and is Accepted; the expired one is refused now.
    renewed = await connect(renewing.url("SP3", tls=True), subprotocol, tls=renewing.tls(new))
    boot = await renewed.call("BootNotification", BOOTS[subprotocol])
    assert boot[2]["status"] == "Accepted"
    await renewed.close()
    assert_401(await upgrade(renewing.tls_port, "/ocpp/SP3", subprotocol=subprotocol,
                             tls=renewing.tls(expired)))  # fmt: skip


async def test_a18_flagged_station_stays_pending_when_it_refuses_the_new_certificate(
    renewing: Secure, tmp_path: Path
) -> None:
    registry = await flag(renewing)
    expired = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    station = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(expired))
    trigger = await boot_pending_and_trigger(station, "ocpp2.0.1")
    station.send_text(json.dumps([3, trigger[1], {"status": "Accepted"}]))
    signed = await station.call("SignCertificate", {"csr": csr_for(SERIAL, tmp_path / "k.key")})
    assert signed[2] == {"status": "Accepted"}
    delivered = await station.receive()
    station.send_text(json.dumps([3, delivered[1], {"status": "Rejected"}]))
    await until(lambda: not registry.lookup("SP3").csr_expected, registry)  # type: ignore[union-attr]
    record = registry.lookup("SP3")
    assert record is not None
    assert record.allow_expired_certificate  # not renewed: the exception stays
    assert len(record.revoked_fingerprints) == 1
    # Still connected, still Pending.
    again = await station.call("BootNotification", BOOTS["ocpp2.0.1"])
    assert again[2]["status"] == "Pending"
    await station.close()


async def refused_with(target: Secure, cert: Issued, why: str) -> None:
    assert_401(await upgrade(target.tls_port, "/ocpp/SP3", tls=target.tls(cert)))
    assert "sp3" not in target.running.gateway.sessions
    reasons = await refused_events(target.nats_url, "sp3")
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{INVALID_CERTIFICATE}: HTTP 401, profile 3, from 127.0.0.1")
    assert f"client certificate: {why}" in reasons[0]


@pytest.mark.parametrize("case", ["expired-intermediate", "not-yet-valid"])
async def test_a18_refused_even_if_flagged(renewing: Secure, tmp_path: Path, case: str) -> None:
    """Only an expired *leaf* is excused: an expired issuer, or a leaf not valid yet, is not."""
    await flag(renewing)
    if case == "expired-intermediate":
        sub = Authority(tmp_path / "sub", "sub-ca", parent=renewing.pki.ca, expired=True)
        await refused_with(renewing, sub.issue("leaf", SERIAL), "an issuer certificate has expired")
    else:
        cert = renewing.pki.ca.issue("future", SERIAL, not_yet_valid=True)
        await refused_with(renewing, cert, "certificate is not yet valid")


async def test_a18_flag_without_a_ca_key_lets_no_one_in(without_ca_key: Secure) -> None:
    """No renewal possible, so no exception: the station would stay Pending for ever."""
    await flag(without_ca_key)
    cert = without_ca_key.pki.ca.issue("expired", SERIAL, expired=True)
    why = "certificate has expired (allow_expired_certificate is set, but no CA key"
    await refused_with(without_ca_key, cert, why)


async def test_a18_valid_intermediate_chain_is_accepted(renewing: Secure, tmp_path: Path) -> None:
    """The time check covers the chain the client sent: valid intermediate, valid leaf → in."""
    intermediate = Authority(tmp_path / "sub", "sub-ca", parent=renewing.pki.ca)
    cert = intermediate.issue("leaf", SERIAL)
    station = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(cert))
    assert (await station.call("BootNotification", BOOTS["ocpp2.0.1"]))[2]["status"] == "Accepted"
    await station.close()


async def test_a18_profile_2_station_with_an_expired_certificate_is_refused(
    renewing: Secure,
) -> None:
    """A certificate out of validity is refused whatever the station's profile (before, the
    TLS handshake failed); the same station without a certificate gets in."""
    cert = renewing.pki.ca.issue("expired", "SN-0002", expired=True)
    refused = await upgrade(renewing.tls_port, "/ocpp/SP2", authorization=basic("SP2", P2),
                            tls=renewing.tls(cert))  # fmt: skip
    assert_401(refused)
    station = await connect(renewing.url("SP2", tls=True), authorization=basic("SP2", P2),
                            tls=renewing.tls())  # fmt: skip
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


async def test_a18_the_flag_is_the_operators_from_the_cli(renewing: Secure) -> None:
    """``csms stations allow-expired-certificate``: profile 3 only, shown by ``list``, kept by
    ``set-password``, and read by the gateway from its registry copy (the station gets in)."""
    registry = renewing.running.registry
    assert registry is not None
    url = renewing.nats_url
    assert await stations(url, "allow-expired-certificate", "SP1-A", "on") == (
        2, "csms stations: SP1-A is registered for profile 1, not 3\n")  # fmt: skip
    code, out = await stations(url, "allow-expired-certificate", "SP3", "on")
    assert (code, out) == (0, "SP3: allow_expired_certificate false -> true\n")
    code, out = await stations(url, "set-password", "SP3", "--generate-password")
    assert code == 0, out
    code, out = await stations(url, "list")
    listed = {r["identity"]: r for r in map(json.loads, out.splitlines())}
    assert listed["SP3"]["allow_expired_certificate"] is True
    assert listed["SP1-A"]["allow_expired_certificate"] is False
    code, out = await stations(url, "add", "X", "--profile", "1", "--generate-password",
                               "--allow-expired-certificate")  # fmt: skip
    assert (code, out.splitlines()[-1]) == (
        2, "csms stations: --allow-expired-certificate is for profile 3 stations")  # fmt: skip

    await until(lambda: registry.lookup("SP3").allow_expired_certificate, registry)  # type: ignore[union-attr]
    expired = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    station = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(expired))
    await boot_pending_and_trigger(station, "ocpp2.0.1")
    await station.close()
    code, out = await stations(url, "allow-expired-certificate", "SP3", "off")
    assert (code, out) == (0, "SP3: allow_expired_certificate true -> false\n")


def _upgrade_twice_resuming(port: int, context: ssl.SSLContext) -> list[tuple[bool, bytes]]:
    """Two blocking upgrades, the second offering the first one's TLS session: (whether it was
    resumed, the status line)."""
    answers: list[tuple[bool, bytes]] = []
    session = None
    request = (
        b"GET /ocpp/SP3 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
    )
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
            tls.sendall(request)
            head = tls.recv(4096)
            session = tls.session
            answers.append((bool(tls.session_reused), head.split(b"\r\n", 1)[0]))
    return answers


async def test_a18_no_tls_resumption_without_a_chain_to_check(renewing: Secure) -> None:
    """A resumed TLS session has no verified chain, and OpenSSL checked no time: the listener
    offers no resumption, so each connection's chain is checked (and a valid one gets in)."""
    context = renewing.tls(renewing.pki.station3)
    answers = await asyncio.get_running_loop().run_in_executor(
        None, _upgrade_twice_resuming, renewing.tls_port, context
    )
    assert [reused for reused, _ in answers] == [False, False]
    assert all(status.startswith(b"HTTP/1.1 101") for _, status in answers), answers


async def test_a18_a_reconnect_during_the_renewal_starts_it_again(
    renewing: Secure, tmp_path: Path
) -> None:
    """The trigger went to a connection the station replaced: the renewal starts over on the
    new one (and completes there)."""
    registry = await flag(renewing)
    expired = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    first = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(expired))
    await boot_pending_and_trigger(first, "ocpp2.0.1")  # not answered: the station reconnects
    second = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(expired))
    await asyncio.wait_for(first.listener.closed.wait(), 10)
    trigger = await boot_pending_and_trigger(second, "ocpp2.0.1")
    second.send_text(json.dumps([3, trigger[1], {"status": "Accepted"}]))
    new_key = tmp_path / "new.key"
    signed = await second.call("SignCertificate", {"csr": csr_for(SERIAL, new_key)})
    assert signed[2] == {"status": "Accepted"}
    delivered = await second.receive()
    second.send_text(json.dumps([3, delivered[1], {"status": "Accepted"}]))
    await asyncio.wait_for(second.listener.closed.wait(), 10)
    new_file = tmp_path / "new.pem"
    new_file.write_text(delivered[3]["certificateChain"])
    await until(lambda: registry.lookup("SP3").cert_fingerprint is not None, registry)  # type: ignore[union-attr]
    record = registry.lookup("SP3")
    assert record is not None
    assert record.cert_fingerprint == fingerprint(Issued(new_file, new_key))
    assert not record.allow_expired_certificate


async def test_a18_the_flag_through_the_operator_api(renewing: Secure) -> None:
    registry = renewing.running.registry
    assert registry is not None
    base = f"http://127.0.0.1:{renewing.running.settings.api_port}/api/v1/stations"
    async with api_client(base) as client:
        entry = (await client.get("/SP3/registration")).json()
        assert entry == {
            "identity": "SP3",
            "profile": 3,
            "password": False,
            "cert_serial": SERIAL,
            "cert_fingerprint": None,
            "allow_expired_certificate": False,
            "renewal_under_way": False,
        }
        assert (await client.get("/NOBODY/registration")).status_code == 404
        refused = await client.put("/SP1-A/registration/allow-expired-certificate",
                                   json={"allowed": True})  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["type"].endswith("not-profile-3")
        allowed = await client.put("/SP3/registration/allow-expired-certificate",
                                   json={"allowed": True})  # fmt: skip
        assert allowed.status_code == 200
        assert allowed.json()["allow_expired_certificate"] is True
    await until(lambda: registry.lookup("SP3").allow_expired_certificate, registry)  # type: ignore[union-attr]
    expired = renewing.pki.ca.issue("expired", SERIAL, expired=True)
    station = await connect(renewing.url("SP3", tls=True), tls=renewing.tls(expired))
    await boot_pending_and_trigger(station, "ocpp2.0.1")
    await station.close()
