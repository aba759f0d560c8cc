"""Answers for services the CSMS does not offer yet, given honestly rather than faked.

- Certificates (A02/A03 SignCertificate, M Get15118EVCertificate/GetCertificateStatus,
  2.1 GetCertificateChainStatus): no CA or OCSP responder is configured, so requests are
  Rejected/Failed. The security issue adds a CA.
- DataTransfer (P01/P02): no vendor extension is registered: UnknownVendorId.
- Smart charging input (K15-K17, 2.1 dynamic schedules): no charging schedule is computed.
- Payments (2.1 VatNumberValidation): no VAT service: Rejected.
"""

from __future__ import annotations

from typing import Any

from csms.handlers.context import HandlerContext

Payload = dict[str, Any]


async def sign_certificate(_: HandlerContext, __: Payload) -> Payload:
    return {"status": "Rejected"}


async def get_15118_ev_certificate(_: HandlerContext, __: Payload) -> Payload:
    return {"status": "Failed", "exiResponse": ""}


async def get_certificate_status(_: HandlerContext, __: Payload) -> Payload:
    return {"status": "Failed"}


async def get_certificate_chain_status(ctx: HandlerContext, payload: Payload) -> Payload:
    """One Failed status per requested certificate (we cannot check revocation)."""
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


async def data_transfer(_: HandlerContext, __: Payload) -> Payload:
    return {"status": "UnknownVendorId"}


async def ev_charging_needs_201(_: HandlerContext, __: Payload) -> Payload:
    """K17: Accepted would promise a schedule we do not compute."""
    return {"status": "Rejected"}


async def ev_charging_needs_21(_: HandlerContext, __: Payload) -> Payload:
    return {"status": "NoChargingProfile"}


async def accepted(_: HandlerContext, __: Payload) -> Payload:
    """NotifyEVChargingSchedule, OpenPeriodicEventStream: the information is stored."""
    return {"status": "Accepted"}


async def rejected(_: HandlerContext, __: Payload) -> Payload:
    """PullDynamicScheduleUpdate: no dynamic schedule is offered."""
    return {"status": "Rejected"}


async def vat_number_validation(_: HandlerContext, payload: Payload) -> Payload:
    return {"vatNumber": payload["vatNumber"], "status": "Rejected"}
