"""Answers for services the CSMS does not offer yet, given honestly rather than faked.

- Certificates: SignCertificate is Accepted only during a renewal the CSMS started (A02, with a
  CA key configured); station-initiated ones (A03), 15118 (M Get15118EVCertificate,
  GetCertificateStatus) and 2.1 GetCertificateChainStatus are Rejected/Failed: no V2G CA or
  OCSP responder is configured.
- DataTransfer (P01/P02): no vendor extension is registered: UnknownVendorId.
- Smart charging input (K15-K17, 2.1 dynamic schedules): no charging schedule is computed.
- Payments (2.1 VatNumberValidation): no VAT service: Rejected.
"""

from __future__ import annotations

from typing import Any

from csms.handlers.context import HandlerContext, Request

Payload = dict[str, Any]


def sign_certificate(ctx: HandlerContext, request: Request) -> Payload:
    """A02.FR.02/A03: Accepted only when the CSMS will sign it: a renewal it started for this
    station (``csms stations renew-certificate``), a charging-station certificate (no V2G CA
    here) and a PEM CSR; the signing and CertificateSigned follow from the renewal's process
    (``csms.certificates``). Anything else, and station-initiated renewals (A03), Rejected."""
    if ctx.certificates is None or not ctx.certificates.expects_csr(ctx.station_id):
        return {"status": "Rejected"}
    payload = request.payload
    kind = payload.get("certificateType", "ChargingStationCertificate")
    csr = payload.get("csr", "")
    if kind != "ChargingStationCertificate" or "BEGIN CERTIFICATE REQUEST" not in csr:
        return {"status": "Rejected"}
    return {"status": "Accepted"}


def get_15118_ev_certificate(_: HandlerContext, __: Request) -> Payload:
    return {"status": "Failed", "exiResponse": ""}


def get_certificate_status(_: HandlerContext, __: Request) -> Payload:
    return {"status": "Failed"}


def get_certificate_chain_status(ctx: HandlerContext, request: Request) -> Payload:
    """One Failed status per requested certificate (we cannot check revocation)."""
    payload = request.payload
    statuses = [
        {
            "certificateHashData": request["certificateHashData"],
            "source": request["source"],
            "status": "Failed",
            "nextUpdate": ctx.now(),
        }
        for request in payload["certificateStatusRequests"]
    ]
    return {"certificateStatus": statuses}


def data_transfer(_: HandlerContext, __: Request) -> Payload:
    return {"status": "UnknownVendorId"}


def ev_charging_needs_201(_: HandlerContext, __: Request) -> Payload:
    """K17: Accepted would promise a schedule we do not compute."""
    return {"status": "Rejected"}


def ev_charging_needs_21(_: HandlerContext, __: Request) -> Payload:
    return {"status": "NoChargingProfile"}


def accepted(_: HandlerContext, __: Request) -> Payload:
    """NotifyEVChargingSchedule, OpenPeriodicEventStream: the information is stored."""
    return {"status": "Accepted"}


def rejected(_: HandlerContext, __: Request) -> Payload:
    """PullDynamicScheduleUpdate: no dynamic schedule is offered."""
    return {"status": "Rejected"}


def vat_number_validation(_: HandlerContext, request: Request) -> Payload:
    return {"vatNumber": request.payload["vatNumber"], "status": "Rejected"}
