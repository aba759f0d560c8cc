"""Certificates made by the tests themselves: a CSO CA, RSA and EC server certificates for
127.0.0.1/localhost, station (client) certificates, and a foreign CA (``cryptography``)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CSO = "Test CSO"
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert_file: Path
    key_file: Path


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Issued:
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_file, key_file)


class Authority:
    """A CA that issues server and station certificates into ``directory``; a root, or an
    intermediate under ``parent`` (its certificates' files then carry the intermediate too)."""

    def __init__(
        self,
        directory: Path,
        name: str,
        organization: str = CSO,
        *,
        parent: Authority | None = None,
        expired: bool = False,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.parent = parent
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name, organization)
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(parent.name if parent is not None else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(parent.key if parent is not None else self.key, hashes.SHA256())
        )
        self.cert_file = directory / f"{name}.ca.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        common_name: str,
        organization: str = CSO,
        *,
        server: bool = False,
        rsa_key: bool = False,
        expired: bool = False,
        not_yet_valid: bool = False,
    ) -> Issued:
        key: Key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if rsa_key
            else ec.generate_private_key(ec.SECP256R1())
        )
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=1)
        if expired:
            start, end = now - datetime.timedelta(days=10), now - datetime.timedelta(days=2)
        if not_yet_valid:
            start, end = now + datetime.timedelta(days=2), now + datetime.timedelta(days=10)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        issued = _write(self.directory, stem, builder.sign(self.key, hashes.SHA256()), key)
        if self.parent is not None:  # the chain the client sends: leaf, then intermediate
            with issued.cert_file.open("ab") as chain:
                chain.write(self.cert.public_bytes(serialization.Encoding.PEM))
        return issued


def fingerprint(issued: Issued) -> str:
    cert = x509.load_pem_x509_certificate(issued.cert_file.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()
