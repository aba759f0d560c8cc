"""Audit of the CSMS's own server certificate (reliability.md §5.5 A16; 2.0.1 A00.FR.502-511).

What stations will check, or should be able to rely on: the subject's common name is the
CSMS's fully qualified domain name, no wildcard anywhere, an RSA key of at least 2048 bits or an
EC key of at least 224, a serial number, a validity period that covers now, and a chain up to
the CSO's hierarchy (the CA file). ``csms serve`` logs each problem at start; ``csms
check-cert`` prints them and fails. Reads files only; no network.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

MIN_RSA_BITS = 2048
MIN_EC_BITS = 224


def audit_files(cert_file: Path, ca_file: Path | None = None) -> list[str]:
    """The problems of the first certificate in ``cert_file`` (the rest of the file: its
    chain); the chain must lead to a certificate of ``ca_file`` when one is given."""
    try:
        chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{cert_file}: cannot read a PEM certificate ({exc})"]
    roots: list[x509.Certificate] = []
    if ca_file is not None:
        try:
            roots = x509.load_pem_x509_certificates(ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            return [f"{ca_file}: cannot read the CA certificates ({exc})"]
    return audit(chain, roots)


def audit(
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    now: datetime.datetime | None = None,
) -> list[str]:
    """Problems of ``chain[0]`` (the server certificate; ``chain[1:]`` its intermediates)."""
    leaf = chain[0]
    now = now or datetime.datetime.now(datetime.UTC)
    problems = _name_problems(leaf) + _key_problems(leaf)
    if leaf.serial_number <= 0:
        problems.append("no serial number")
    if now < leaf.not_valid_before_utc:
        problems.append(f"not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if now > leaf.not_valid_after_utc:
        problems.append(f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if roots:
        problems.extend(_chain_problems(chain, roots))
    return problems


def _name_problems(leaf: x509.Certificate) -> list[str]:
    names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names:
        return ["the subject has no common name (A00.FR.510: the CSMS's FQDN)"]
    problems = []
    common_name = names[0]
    if "*" in common_name:
        problems.append(f"wildcard common name {common_name!r}")
    elif not _is_fqdn(common_name):
        problems.append(f"common name {common_name!r} is not a domain name (A00.FR.510)")
    try:
        alternative = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return problems
    problems.extend(
        f"wildcard subject alternative name {dns!r}"
        for dns in alternative.value.get_values_for_type(x509.DNSName)
        if "*" in dns
    )
    return problems


def _is_fqdn(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        labels = name.rstrip(".").split(".")
        return len(labels) >= 2 and all(labels) and not name.startswith("-")
    return False


def _key_problems(leaf: x509.Certificate) -> list[str]:
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return [f"RSA key of {key.key_size} bits (A00.FR.502: at least {MIN_RSA_BITS})"]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return [f"EC key of {key.curve.key_size} bits (A00.FR.503: at least {MIN_EC_BITS})"]
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return [f"{type(key).__name__} key: RSA or EC expected"]
    return []


def _chain_problems(chain: list[x509.Certificate], roots: list[x509.Certificate]) -> list[str]:
    """Each certificate must be signed by the next one of the file, the last by a root."""
    for child, parent in itertools.pairwise(chain):
        if not _issued_by(child, parent):
            return [f"{child.subject.rfc4514_string()} is not signed by the next certificate"]
    top = chain[-1]
    if any(_issued_by(top, root) for root in roots) or top in roots:
        return []
    return [
        f"the chain does not lead to the CSO's CA: {top.issuer.rfc4514_string()} is not in "
        "the CA file"
    ]


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
