"""SignCertificate (A02/A03): Accepted only when the CSMS will sign, i.e. during a renewal it
started for this station, for a charging-station certificate, with a PEM CSR."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from csms.domain.tokens import TokenPolicy
from csms.handlers.context import HandlerContext, ParsedRequest
from csms.handlers.services import sign_certificate

CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"


class Renewals:
    def __init__(self, *identities: str) -> None:
        self.identities = set(identities)

    def expects_csr(self, identity: str) -> bool:
        return identity in self.identities


class NoIds:
    async def allocate(self, key: str, station_id: str) -> int:
        raise AssertionError("not used")

    async def started_by(self, transaction_id: int) -> str | None:
        raise AssertionError("not used")


def answer(ctx: HandlerContext, payload: dict[str, Any]) -> str:
    return str(sign_certificate(ctx, ParsedRequest(payload))["status"])


@pytest.mark.parametrize(
    ("renewing", "payload", "status"),
    [
        (("cp1",), {"csr": CSR}, "Accepted"),
        (("cp1",), {"csr": CSR, "certificateType": "ChargingStationCertificate"}, "Accepted"),
        (("cp1",), {"csr": CSR, "certificateType": "V2GCertificate"}, "Rejected"),
        (("cp1",), {"csr": "not a CSR"}, "Rejected"),
        (("cp2",), {"csr": CSR}, "Rejected"),  # A03: not asked for: no signing promised
        ((), {"csr": CSR}, "Rejected"),
    ],
)
def test_accepted_only_during_a_renewal(
    renewing: tuple[str, ...], payload: dict[str, Any], status: str
) -> None:
    ctx = HandlerContext("cp1", "2.0.1", NoIds(), TokenPolicy(), certificates=Renewals(*renewing))
    assert answer(ctx, payload) == status


def test_rejected_without_a_ca() -> None:
    ctx = HandlerContext("cp1", "1.6", NoIds(), TokenPolicy())
    assert ctx.certificates is None
    assert answer(ctx, {"csr": CSR}) == "Rejected"
    assert answer(dataclasses.replace(ctx, certificates=Renewals("cp1")), {"csr": CSR}) == (
        "Accepted"
    )
