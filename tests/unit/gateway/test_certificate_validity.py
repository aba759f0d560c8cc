"""A18: the gateway's own validity check of client certificate chains (csms.gateway.auth) and
how the listener reads the verified chain (csms.gateway.listener), without sockets."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from csms.gateway.auth import (
    EXPIRED_CERTIFICATE_ACCEPTED,
    INVALID_CERTIFICATE,
    AuthConfig,
    Authenticator,
    CertificateValidity,
    ClientCertificate,
    Handshake,
    Refusal,
    validity_problem,
)
from csms.gateway.listener import (
    X509_V_FLAG_NO_CHECK_TIME,
    certificate_validity,
    checks_time_after_handshake,
    server_tls_context,
    verified_chain_supported,
)
from streams.registry import StationRecord
from tests.integration.pki import Authority
from tests.unit.gateway.test_auth import Directory

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
VALID = (NOW - DAY, NOW + DAY)
EXPIRED = (NOW - 10 * DAY, NOW - DAY)
FUTURE = (NOW + DAY, NOW + 10 * DAY)


def validity(
    leaf: tuple[datetime.datetime, datetime.datetime],
    *issuers: tuple[datetime.datetime, datetime.datetime],
) -> CertificateValidity:
    return CertificateValidity(leaf[0], leaf[1], issuers)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (validity(VALID, VALID, VALID), None),
        (validity(EXPIRED, VALID, VALID), ("certificate has expired", True)),
        (validity(FUTURE, VALID), ("certificate is not yet valid", False)),
        (validity(VALID, EXPIRED, VALID), ("an issuer certificate has expired", False)),
        (validity(EXPIRED, VALID, EXPIRED), ("an issuer certificate has expired", False)),
        (validity(VALID, VALID, FUTURE), ("an issuer certificate is not yet valid", False)),
        (
            CertificateValidity(VALID[0], VALID[1], None),
            ("verified chain unavailable: the issuers' validity is unknown", False),
        ),
    ],
)
def test_validity_problem(given: CertificateValidity, problem: tuple[str, bool] | None) -> None:
    assert validity_problem(given, NOW) == problem


def cert(period: CertificateValidity | None, common_name: str = "SN-0001") -> ClientCertificate:
    return ClientCertificate(common_name, "Test CSO", "ab" * 32, period)


def make(renewal: bool = True) -> tuple[Authenticator, list[Refusal]]:
    directory = Directory(
        StationRecord(identity="flagged", profile=3, cert_serial="SN-0001",
                      allow_expired_certificate=True),
        StationRecord(identity="plain-3", profile=3, cert_serial="SN-0001"),
        StationRecord(identity="flagged-2", profile=2, password_hash=None,
                      allow_expired_certificate=True),
    )  # fmt: skip
    refusals: list[Refusal] = []
    config = AuthConfig(unknown_stations="accept", cso_name="Test CSO",
                        certificate_renewal=renewal)  # fmt: skip
    return Authenticator(directory, config, refusals.append, wall_clock=lambda: NOW), refusals


def decide(auth: Authenticator, identity: str, presented: ClientCertificate) -> tuple[int, bool]:
    verdict = auth.decide(Handshake(identity, "10.0.0.1", None, tls=True, certificate=presented))
    return verdict.status, verdict.probation


def test_an_expired_leaf_is_excused_only_for_a_flagged_profile_3_station() -> None:
    auth, events = make()
    expired = cert(validity(EXPIRED, VALID))
    assert decide(auth, "plain-3", expired) == (401, False)
    assert decide(auth, "flagged", expired) == (101, True)
    assert decide(auth, "flagged-2", expired) == (401, False)  # the flag is a profile-3 thing
    assert decide(auth, "nobody", expired) == (401, False)  # even with unknown stations accepted
    assert [(e.event, e.status) for e in events] == [
        (INVALID_CERTIFICATE, 401),
        (EXPIRED_CERTIFICATE_ACCEPTED, 101),
        (INVALID_CERTIFICATE, 401),
        (INVALID_CERTIFICATE, 401),
    ]
    assert events[0].reason == "client certificate: certificate has expired"


def test_a_flagged_station_still_needs_its_own_certificate() -> None:
    auth, _ = make()
    assert decide(auth, "flagged", cert(validity(EXPIRED, VALID), "SN-0002")) == (401, False)


@pytest.mark.parametrize(
    "period",
    [validity(EXPIRED, EXPIRED), validity(FUTURE, VALID), validity(VALID, FUTURE),
     CertificateValidity(EXPIRED[0], EXPIRED[1], None)],
)  # fmt: skip
def test_anything_but_an_expired_leaf_is_refused_even_if_flagged(
    period: CertificateValidity,
) -> None:
    auth, events = make()
    assert decide(auth, "flagged", cert(period)) == (401, False)
    assert events[0].event == INVALID_CERTIFICATE


def test_no_renewal_no_exception() -> None:
    auth, events = make(renewal=False)
    assert decide(auth, "flagged", cert(validity(EXPIRED, VALID))) == (401, False)
    assert "no CA key" in events[0].reason


def test_valid_or_unchecked_certificates_are_unaffected() -> None:
    auth, events = make()
    assert decide(auth, "plain-3", cert(validity(VALID, VALID))) == (101, False)
    assert decide(auth, "plain-3", cert(None)) == (101, False)  # OpenSSL checked the time
    assert decide(auth, "flagged", cert(validity(VALID, VALID))) == (101, False)
    assert events == []


# -- the listener's side -----------------------------------------------------------------
def der(path: Path) -> list[bytes]:
    return [
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(path.read_bytes())
    ]


class EngineObject:
    """What aiofastnet's own engine hands over as ``ssl_object``: DER bytes."""

    def __init__(self, chain: list[bytes] | None, fail: bool = False) -> None:
        self.chain, self.fail = chain, fail

    def get_verified_chain(self) -> list[bytes] | None:
        if self.fail:
            raise ssl.SSLError("no chain")
        return self.chain


class _Item:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def public_bytes(self, encoding: int) -> bytes:
        assert encoding == 2  # _ssl.ENCODING_DER
        return self.data


class _Private:
    def __init__(self, chain: list[bytes]) -> None:
        self.chain = chain

    def get_verified_chain(self) -> list[_Item]:
        return [_Item(d) for d in self.chain]


class StdlibObject:
    """A 3.11 ``ssl.SSLObject``: the chain only through the private ``_sslobj``."""

    def __init__(self, chain: list[bytes]) -> None:
        self._sslobj = _Private(chain)


def test_the_verified_chain_is_read_from_either_engine(tmp_path: Path) -> None:
    root = Authority(tmp_path, "root")
    sub = Authority(tmp_path / "sub", "sub", parent=root, expired=True)
    leaf, intermediate = der(sub.issue("leaf", "SN-0001").cert_file)
    root_der = der(root.cert_file)[0]
    for ssl_object in (EngineObject([leaf, intermediate, root_der]),
                       StdlibObject([leaf, intermediate, root_der])):  # fmt: skip
        read = certificate_validity(ssl_object, leaf)
        assert read.issuers is not None
        assert len(read.issuers) == 2
        problem = validity_problem(read, datetime.datetime.now(datetime.UTC))
        assert problem == ("an issuer certificate has expired", False)


@pytest.mark.parametrize(
    "ssl_object",
    [EngineObject(None), EngineObject([], fail=True), EngineObject([b"not a certificate"]),
     object()],
)  # fmt: skip
def test_a_missing_chain_becomes_a_refusal_not_a_crash(tmp_path: Path, ssl_object: object) -> None:
    leaf = der(Authority(tmp_path, "root").issue("leaf", "SN-0001").cert_file)[0]
    read = certificate_validity(ssl_object, leaf)
    assert read.issuers is None
    assert validity_problem(read, datetime.datetime.now(datetime.UTC)) is not None


def test_a_chain_for_another_leaf_is_not_trusted(tmp_path: Path) -> None:
    root = Authority(tmp_path, "root")
    mine = der(root.issue("mine", "SN-0001").cert_file)[0]
    other = der(root.issue("other", "SN-0002").cert_file)[0]
    assert certificate_validity(EngineObject([other, der(root.cert_file)[0]]), mine).issuers is None


def test_the_context_leaves_time_to_the_gateway_only_when_the_chain_is_readable(
    tmp_path: Path,
) -> None:
    root = Authority(tmp_path, "root")
    server = root.issue("server", "localhost", server=True)
    pairs = [(server.cert_file, server.key_file)]
    assert verified_chain_supported()  # Python 3.11 + aiofastnet 1.2 here
    context = server_tls_context(pairs, root.cert_file)
    assert checks_time_after_handshake(context)
    assert context.num_tickets == 0  # no resumption: a resumed session has no chain to check
    assert context.options & ssl.OP_NO_TICKET
    forced = server_tls_context(pairs, root.cert_file, check_time_after_handshake=False)
    assert not checks_time_after_handshake(forced)
    assert not server_tls_context(pairs).verify_flags & X509_V_FLAG_NO_CHECK_TIME  # no CA
