"""A16: the audit of the CSMS's server certificate, over certificates made here."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from csms import cli
from csms.tls_audit import audit

NOW = datetime.datetime.now(datetime.UTC)
CA_KEY = ec.generate_private_key(ec.SECP256R1())
FOREIGN_KEY = ec.generate_private_key(ec.SECP256R1())
GOOD_KEY = ec.generate_private_key(ec.SECP256R1())


def name(common_name: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CSO")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def certificate(
    common_name: str | None,
    issuer: str = "CSO Root",
    issuer_key: ec.EllipticCurvePrivateKey = CA_KEY,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = GOOD_KEY,
    days: tuple[int, int] = (-1, 30),
    dns: tuple[str, ...] = (),
    ca: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


ROOT = certificate("CSO Root", key=CA_KEY, ca=True)


def test_a_good_certificate_has_no_problem() -> None:
    assert audit([certificate("csms.example.com", dns=("csms.example.com",))], [ROOT]) == []


@pytest.mark.parametrize(
    ("leaf", "problem"),
    [
        (certificate("*.example.com"), "wildcard common name"),
        (certificate("csms.example.com", dns=("*.example.com",)), "wildcard subject alternative"),
        (certificate("localhost"), "not a domain name"),
        (certificate("127.0.0.1"), "not a domain name"),
        (certificate(None), "no common name"),
        (
            certificate("csms.example.com", key=rsa.generate_private_key(65537, 1024)),
            "RSA key of 1024 bits",
        ),
        (
            certificate("csms.example.com", key=ec.generate_private_key(ec.SECP192R1())),
            "EC key of 192 bits",
        ),
        (certificate("csms.example.com", days=(-10, -2)), "expired"),
        (certificate("csms.example.com", days=(2, 10)), "not valid before"),
        (
            certificate("csms.example.com", issuer="Foreign", issuer_key=FOREIGN_KEY),
            "does not lead to the CSO's CA",
        ),
    ],
)
def test_each_problem_is_named(leaf: x509.Certificate, problem: str) -> None:
    problems = audit([leaf], [ROOT])
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_a_chain_through_an_intermediate() -> None:
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = certificate("CSO Sub CA", key=intermediate_key, ca=True)
    leaf = certificate("csms.example.com", issuer="CSO Sub CA", issuer_key=intermediate_key)
    assert audit([leaf, intermediate], [ROOT]) == []
    assert "not signed by the next" in audit([leaf, ROOT], [ROOT])[0]


def write(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def test_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = write(tmp_path / "ca.pem", ROOT)
    good = write(tmp_path / "good.pem", certificate("csms.example.com"))
    bad = write(tmp_path / "bad.pem", certificate("*.example.com"))
    assert cli.main(["check-cert", str(good), "--ca", str(ca)]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli.main(["check-cert", str(bad), "--ca", str(ca)]) == 1
    assert "wildcard" in capsys.readouterr().out
    assert cli.main(["check-cert", str(tmp_path / "missing.pem")]) == 1
    assert "cannot read" in capsys.readouterr().out
