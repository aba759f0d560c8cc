"""Security profiles end to end (reliability.md §5.5, rows A1-A25): a real CSMS with a real
nats-server, TLS with certificates made here, refusals read off the wire and the event stream."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import statistics
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from csms import app
from csms.gateway.auth import (
    FAILED_TO_AUTHENTICATE,
    INVALID_CERTIFICATE,
    INVALID_TLS_CIPHER_SUITE,
    INVALID_TLS_VERSION,
    PROFILE_MISMATCH,
    REPLACED_REPEATEDLY,
    TLS_UNIDENTIFIED,
)
from streams.embedded import EmbeddedNats
from streams.registry import StationRecord, hash_password
from tests.integration.conftest import loopback_settings, read_all_events, read_events
from tests.integration.pki import Authority, Issued
from tests.integration.secure_client import Answer, basic, client_tls, connect, upgrade

P1 = "profile-one-password-0123456789"
P1B = "another-password-for-station-b"
P2 = "profile-two-password-0123456789"
COLON = "with:colons:inside:the-password"
P16 = "sixteen-chars-16"
P64 = "x" * 64


@dataclass
class Pki:
    ca: Authority
    foreign: Authority
    rsa_server: Issued
    ec_server: Issued
    station3: Issued


@dataclass
class Secure:
    running: app.Running
    pki: Pki
    nats_url: str

    @property
    def port(self) -> int:
        return self.running.gateway.port

    @property
    def tls_port(self) -> int:
        return self.running.gateway.tls_port

    def url(self, identity: str, tls: bool = False) -> str:
        if tls:
            return f"wss://127.0.0.1:{self.tls_port}/ocpp/{identity}"
        return f"ws://127.0.0.1:{self.port}/ocpp/{identity}"

    def tls(
        self, cert: Issued | None = None, *, max_tls12: bool = False, ciphers: str | None = None
    ) -> ssl.SSLContext:
        pair = (cert.cert_file, cert.key_file) if cert else None
        return client_tls(self.pki.ca.cert_file, pair, max_tls12=max_tls12, ciphers=ciphers)


def make_pki(directory: Path) -> Pki:
    ca = Authority(directory, "cso-ca")
    return Pki(
        ca=ca,
        foreign=Authority(directory / "foreign", "foreign-ca", "Someone Else"),
        rsa_server=ca.issue("server-rsa", "localhost", server=True, rsa_key=True),
        ec_server=ca.issue("server-ec", "localhost", server=True),
        station3=ca.issue("station3", "SN-0003"),
    )


async def start_secure(
    tmp_path: Path,
    nats: EmbeddedNats,
    pki: Pki,
    client_certificate: str = "optional",
    ca_key_file: Path | None = None,
) -> app.Running:
    settings = dataclasses.replace(
        loopback_settings(tmp_path, nats.url),
        unknown_stations="reject",
        tls_port=0,
        tls_cert_file=pki.rsa_server.cert_file,
        tls_key_file=pki.rsa_server.key_file,
        tls_ecdsa_cert_file=pki.ec_server.cert_file,
        tls_ecdsa_key_file=pki.ec_server.key_file,
        tls_ca_file=pki.ca.cert_file,
        tls_ca_key_file=ca_key_file,
        tls_client_certificate=client_certificate,
        cso_name="Test CSO",
    )
    running = await app.start(settings)
    assert running.registry is not None
    for identity, profile, password in [
        ("SP1-A", 1, P1),
        ("SP1-B", 1, P1B),
        ("SP2", 2, P2),
        ("CS-CASE", 1, P1),
        ("COLON", 1, COLON),
        ("P16", 1, P16),
        ("P64", 1, P64),
    ]:
        record = StationRecord(identity=identity, profile=profile,
                               password_hash=hash_password(password))  # fmt: skip
        await running.registry.put(record)
    await running.registry.put(StationRecord(identity="SP3", profile=3, cert_serial="SN-0003"))
    return running


@pytest.fixture
async def secure(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Secure]:
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    yield Secure(running, pki, nats_server.url)
    await running.stop()


async def refused_events(nats_url: str, identity: str) -> list[str]:
    """The security events recorded for ``identity`` (waits for the first one)."""
    await read_events(nats_url, identity, 1)
    events = await read_all_events(nats_url, identity)
    assert {e.kind for e in events} == {"security"}  # no OCPP processed, no session
    return [e.reason or "" for e in events]


async def tls_events(nats_url: str) -> list[str]:
    """The failed TLS handshakes recorded (under the pseudo-identity: no URL was sent yet)."""
    await read_events(nats_url, TLS_UNIDENTIFIED, 1)
    events = await read_all_events(nats_url, TLS_UNIDENTIFIED)
    assert {e.kind for e in events} == {"security"}
    return [e.reason or "" for e in events]


def assert_401(answer: Answer) -> None:
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"].startswith('Basic realm="OCPP"')


# -- A1-A8: Basic authentication ------------------------------------------------------------
async def test_a1_no_authorization_header(secure: Secure) -> None:
    assert_401(await upgrade(secure.port, "/ocpp/SP1-A"))
    reasons = await refused_events(secure.nats_url, "sp1-a")
    assert reasons[0].startswith(FAILED_TO_AUTHENTICATE)


async def test_a2_wrong_password(secure: Secure) -> None:
    assert_401(await upgrade(secure.port, "/ocpp/SP1-A", authorization=basic("SP1-A", P1B)))
    assert P1B not in "".join(await refused_events(secure.nats_url, "sp1-a"))  # A01.FR.09


async def test_a3_credentials_of_another_station(secure: Secure) -> None:
    assert_401(await upgrade(secure.port, "/ocpp/SP1-A", authorization=basic("SP1-B", P1B)))


async def test_a4_unknown_identity_is_a_uniform_401_with_the_same_latency(secure: Secure) -> None:
    async def timed(path: str, authorization: str, address: str) -> float:
        start = time.perf_counter()
        assert_401(await upgrade(secure.port, path, authorization=authorization,
                                 local_address=address))  # fmt: skip
        return time.perf_counter() - start

    unknown, wrong = [], []
    for i in range(15):  # each from its own address: the throttle stays out of the picture
        unknown.append(await timed("/ocpp/NOBODY", basic("NOBODY", P1), f"127.0.1.{i + 1}"))
        wrong.append(await timed("/ocpp/SP1-A", basic("SP1-A", P1B), f"127.0.2.{i + 1}"))
    assert abs(statistics.median(unknown) - statistics.median(wrong)) < 0.005


@pytest.mark.parametrize("identity", ["has:colon", "x" * 49, "sp%20ace"])
async def test_a5_invalid_2x_identities_never_upgrade(secure: Secure, identity: str) -> None:
    answer = await upgrade(secure.port, f"/ocpp/{identity}", authorization=basic("a", P1))
    assert answer.status == 400


async def test_a6_identity_is_case_insensitive_on_2x(secure: Secure) -> None:
    lower = await connect(secure.url("cs-case"), authorization=basic("cs-case", P1))
    upper = await connect(secure.url("CS-CASE"), authorization=basic("CS-CASE", P1))
    await asyncio.wait_for(lower.listener.closed.wait(), 5)  # one station, one session
    assert list(secure.running.gateway.sessions) == ["cs-case"]
    assert (await upper.call("Heartbeat", {}))[0] == 3
    await upper.close()


@pytest.mark.parametrize(("identity", "password"), [("COLON", COLON), ("P16", P16), ("P64", P64)])
async def test_a7_a8_colons_and_password_lengths(
    secure: Secure, identity: str, password: str
) -> None:
    station = await connect(secure.url(identity), authorization=basic(identity, password))
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


# -- A11, A12, A21: no downgrade ------------------------------------------------------------
async def test_a11_profile_2_station_on_plain_ws_is_refused_and_recorded(secure: Secure) -> None:
    assert_401(await upgrade(secure.port, "/ocpp/SP2", authorization=basic("SP2", P2)))
    reasons = await refused_events(secure.nats_url, "sp2")
    assert reasons[0].startswith(PROFILE_MISMATCH)
    station = await connect(secure.url("SP2", tls=True), authorization=basic("SP2", P2),
                            tls=secure.tls())  # fmt: skip
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


async def test_a12_a21_profile_3_station_without_certificate(secure: Secure) -> None:
    over_basic = await upgrade(secure.tls_port, "/ocpp/SP3", authorization=basic("SP3", P1),
                               tls=secure.tls())  # fmt: skip
    assert_401(over_basic)
    assert_401(await upgrade(secure.port, "/ocpp/SP3"))
    reasons = await refused_events(secure.nats_url, "sp3")
    assert all(r.startswith(PROFILE_MISMATCH) for r in reasons)


async def test_a21_profile_3_only_listener_fails_the_tls_handshake(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki, client_certificate="required")
    try:
        port = running.gateway.tls_port
        without = await upgrade(port, "/ocpp/SP3", tls=client_tls(pki.ca.cert_file))
        assert without.status is None, without
        cert = (pki.station3.cert_file, pki.station3.key_file)
        station = await connect(f"wss://127.0.0.1:{port}/ocpp/SP3",
                                tls=client_tls(pki.ca.cert_file, cert))  # fmt: skip
        assert (await station.call("Heartbeat", {}))[0] == 3
        await station.close()
    finally:
        await running.stop()


# -- A13-A15: TLS versions and suites ------------------------------------------------------
async def test_a13_tls_older_than_1_2_is_refused(secure: Secure) -> None:
    old = secure.tls()
    with warnings.catch_warnings():  # the client must be allowed to offer what we refuse
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    answer = await upgrade(secure.tls_port, "/ocpp/SP2", tls=old)
    assert answer.status is None
    # The server drops the handshake (the client sees a reset, not an alert: see ADR 0004).
    assert answer.during_tls_handshake, answer
    reasons = await tls_events(secure.nats_url)
    assert reasons == [f"{INVALID_TLS_VERSION}: from 127.0.0.1: {reasons[0].split(': ', 2)[2]}"]


async def test_a14_weak_suites_are_refused(secure: Secure) -> None:
    weak = secure.tls(max_tls12=True, ciphers="AES128-SHA:ECDHE-RSA-AES128-SHA:DES-CBC3-SHA")
    answer = await upgrade(secure.tls_port, "/ocpp/SP2", tls=weak)
    assert answer.status is None
    # The server drops the handshake (the client sees a reset, not an alert: see ADR 0004).
    assert answer.during_tls_handshake, answer
    reasons = await tls_events(secure.nats_url)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{INVALID_TLS_CIPHER_SUITE}: from 127.0.0.1: TLS handshake")


@pytest.mark.parametrize(
    "suite",
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    ],
)
async def test_a15_each_mandated_suite_alone(secure: Secure, suite: str) -> None:
    context = secure.tls(max_tls12=True, ciphers=suite)
    answer = await upgrade(secure.tls_port, "/ocpp/SP2", authorization=basic("SP2", P2),
                           tls=context)  # fmt: skip
    assert answer.status == 101, answer
    assert answer.cipher == suite


# -- A17-A20: client certificates ----------------------------------------------------------
async def test_profile_3_station_with_its_certificate(secure: Secure) -> None:
    station = await connect(secure.url("SP3", tls=True), tls=secure.tls(secure.pki.station3))
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


async def test_a17_certificate_from_another_ca_fails_tls(secure: Secure) -> None:
    cert = secure.pki.foreign.issue("foreign-station", "SN-0003", "Test CSO")
    answer = await upgrade(secure.tls_port, "/ocpp/SP3", tls=secure.tls(cert))
    assert answer.status is None, answer
    assert "SP3" not in secure.running.gateway.sessions
    reasons = await tls_events(secure.nats_url)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{INVALID_CERTIFICATE}: from 127.0.0.1: TLS handshake")
    assert "unable to get local issuer" in reasons[0]


async def test_a18_expired_certificate_is_refused_after_tls(secure: Secure) -> None:
    """The chain is verified without time during TLS and the gateway checks the periods: an
    expired certificate of a station that is not flagged gets a 401 (A18's default; the other
    cases are in test_expired_certificates.py)."""
    cert = secure.pki.ca.issue("expired-station", "SN-0003", expired=True)
    assert_401(await upgrade(secure.tls_port, "/ocpp/SP3", tls=secure.tls(cert)))
    assert "sp3" not in secure.running.gateway.sessions
    reasons = await refused_events(secure.nats_url, "sp3")
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{INVALID_CERTIFICATE}: HTTP 401, profile 3, from 127.0.0.1")
    assert reasons[0].endswith("client certificate: certificate has expired")


async def test_a13_a17_a_tls_failure_flood_records_one_event_per_address(secure: Secure) -> None:
    """Failed handshakes are recorded sampled (``EventSampler``): 10 from one address make one
    event; the next one recorded (after the window) says how many were not."""
    cert = secure.pki.foreign.issue("flood", "SN-0003", "Test CSO")
    for _ in range(10):
        answer = await upgrade(secure.tls_port, "/ocpp/SP3", tls=secure.tls(cert))
        assert answer.status is None, answer
    # The good station still gets in, and by then every failure has been handled.
    station = await connect(secure.url("SP3", tls=True), tls=secure.tls(secure.pki.station3))
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()
    assert len(await tls_events(secure.nats_url)) == 1
    sampler = secure.running.gateway.auth.tls_failures  # type: ignore[union-attr]
    assert sampler.sample("127.0.0.1") is None  # still within the window: suppressed


@pytest.mark.parametrize(
    ("common_name", "organization"), [("SN-9999", "Test CSO"), ("SN-0003", "Other CSO")]
)
async def test_a19_a20_certificate_of_the_wrong_station_or_owner(
    secure: Secure, common_name: str, organization: str
) -> None:
    cert = secure.pki.ca.issue("other-station", common_name, organization)
    assert_401(await upgrade(secure.tls_port, "/ocpp/SP3", tls=secure.tls(cert)))
    reasons = await refused_events(secure.nats_url, "sp3")
    assert reasons[0].startswith(INVALID_CERTIFICATE)


# -- A23-A25: brute force, hijack, reconnect -----------------------------------------------
async def test_a23_brute_force_is_throttled_but_the_real_station_gets_in(secure: Secure) -> None:
    wrong = [basic("SP1-A", f"{i:020d}") for i in range(30)]
    statuses = [
        (await upgrade(secure.port, "/ocpp/SP1-A", authorization=header)).status for header in wrong
    ]
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    station = await connect(secure.url("SP1-A"), authorization=basic("SP1-A", P1),
                            local_address="127.0.0.2")  # fmt: skip
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()
    events = await read_all_events(secure.nats_url, "sp1-a")
    assert len([e for e in events if e.kind == "security"]) == 10  # not one per attempt


async def test_a24_wrong_credentials_never_displace_a_live_session(secure: Secure) -> None:
    live = await connect(secure.url("SP1-A"), authorization=basic("SP1-A", P1))
    session = secure.running.gateway.sessions["sp1-a"]
    for authorization in [None, basic("SP1-A", P1B), basic("SP1-B", P1B)]:
        assert_401(await upgrade(secure.port, "/ocpp/SP1-A", authorization=authorization))
    assert secure.running.gateway.sessions["sp1-a"] is session
    assert (await live.call("Heartbeat", {}))[0] == 3
    await live.close()


async def test_a25_valid_reconnect_replaces_the_old_session(secure: Secure) -> None:
    old = await connect(secure.url("SP1-A"), authorization=basic("SP1-A", P1))
    new = await connect(secure.url("SP1-A"), authorization=basic("SP1-A", P1))
    await asyncio.wait_for(old.listener.closed.wait(), 5)
    assert (await new.call("Heartbeat", {}))[0] == 3
    for _ in range(3):  # the 4th replacement within a minute raises the alert
        old, new = new, await connect(secure.url("SP1-A"), authorization=basic("SP1-A", P1))
        await asyncio.wait_for(old.listener.closed.wait(), 5)
    await new.close()
    for _ in range(50):  # the alert is stored in the background: read until it is there
        events = await read_all_events(secure.nats_url, "sp1-a")
        alerts = [e.reason or "" for e in events if e.kind == "security"]
        if alerts:
            break
    assert len(alerts) == 1
    assert alerts[0].startswith(REPLACED_REPEATEDLY)


async def test_unknown_stations_accepted_in_demo_mode(csms: app.Running) -> None:
    station = await connect(f"ws://127.0.0.1:{csms.gateway.port}/ocpp/ANY-ONE")
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()
