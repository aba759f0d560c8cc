"""The route table: (OCPP version, action) → handler, for every station-initiated action.

A table, not decorators: one place shows which answer each action gets in each version, and a
test checks it covers exactly the station-initiated actions of the core's action tables.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from csms.handlers import core, services
from csms.handlers.context import Flagged, HandlerContext, ParsedRequest, Request

Payload = dict[str, Any]
Answer = Payload | Flagged
"""The payload to answer with, or that payload plus a flag for the stored event (M31)."""
Handler = Callable[[HandlerContext, Request], Answer | Awaitable[Answer]]
"""A plain function answers at once (the session answers from the PubAck callback, no task);
an ``async def`` handler is for answers that need I/O (1.6 StartTransaction's id allocation)."""

# Answers shared by 2.0.1 and 2.1.
_V2_COMMON: dict[str, Handler] = {
    "Authorize": core.authorize_2x,
    "BootNotification": core.boot_notification,
    "ClearedChargingLimit": core.acknowledge,
    "DataTransfer": services.data_transfer,
    "FirmwareStatusNotification": core.acknowledge,
    "Get15118EVCertificate": services.get_15118_ev_certificate,
    "GetCertificateStatus": services.get_certificate_status,
    "Heartbeat": core.heartbeat,
    "LogStatusNotification": core.acknowledge,
    "MeterValues": core.acknowledge,
    "NotifyChargingLimit": core.acknowledge,
    "NotifyCustomerInformation": core.acknowledge,
    "NotifyDisplayMessages": core.acknowledge,
    "NotifyEVChargingSchedule": services.accepted,
    "NotifyEvent": core.acknowledge,
    "NotifyMonitoringReport": core.acknowledge,
    "NotifyReport": core.acknowledge,
    "PublishFirmwareStatusNotification": core.acknowledge,
    "ReportChargingProfiles": core.acknowledge,
    "ReservationStatusUpdate": core.acknowledge,
    "SecurityEventNotification": core.acknowledge,
    "SignCertificate": services.sign_certificate,
    "StatusNotification": core.acknowledge,
    "TransactionEvent": core.transaction_event,
}

_V16: dict[str, Handler] = {
    "Authorize": core.authorize_16,
    "BootNotification": core.boot_notification,
    "DataTransfer": services.data_transfer,
    "DiagnosticsStatusNotification": core.acknowledge,
    "FirmwareStatusNotification": core.acknowledge,
    "Heartbeat": core.heartbeat,
    "LogStatusNotification": core.acknowledge,
    "MeterValues": core.acknowledge,
    "SecurityEventNotification": core.acknowledge,
    "SignCertificate": services.sign_certificate,
    "SignedFirmwareStatusNotification": core.acknowledge,
    "StartTransaction": core.start_transaction,
    "StatusNotification": core.acknowledge,
    "StopTransaction": core.stop_transaction,
}

ROUTES: dict[tuple[str, str], Handler] = {
    **{("1.6", action): handler for action, handler in _V16.items()},
    **{("2.0.1", action): handler for action, handler in _V2_COMMON.items()},
    **{
        ("2.0.1", "NotifyEVChargingNeeds"): services.ev_charging_needs_201,
    },
    **{("2.1", action): handler for action, handler in _V2_COMMON.items()},
    **{
        ("2.1", action): handler
        for action, handler in {
            "BatterySwap": core.acknowledge,
            "ClosePeriodicEventStream": core.acknowledge,
            "GetCertificateChainStatus": services.get_certificate_chain_status,
            "NotifyDERAlarm": core.acknowledge,
            "NotifyDERStartStop": core.acknowledge,
            "NotifyEVChargingNeeds": services.ev_charging_needs_21,
            "NotifyPriorityCharging": core.acknowledge,
            "NotifySettlement": core.acknowledge,
            "OpenPeriodicEventStream": services.accepted,
            "PullDynamicScheduleUpdate": services.rejected,
            "ReportDERControl": core.acknowledge,
            "VatNumberValidation": services.vat_number_validation,
        }.items()
    },
}

# SEND messages (2.1) are recorded, never answered (Part 4 §4.2.4, FR.07).
SEND_ONLY: frozenset[tuple[str, str]] = frozenset({("2.1", "NotifyPeriodicEventStream")})

ACKNOWLEDGED: dict[str, dict[str, bytes | None]] = {
    version: {
        a: core.EMPTY_UNLESS[h]
        for (v, a), h in ROUTES.items()
        if v == version and h in core.EMPTY_UNLESS
    }
    for version in {v for v, _ in ROUTES}
}
"""Per version, the actions answered with the empty payload (``core.EMPTY_UNLESS``: always, or
unless the frame holds the given bytes): the gateway answers those in one Rust call
(``Codec.acknowledge``)."""


async def respond(handler: Handler, ctx: HandlerContext, payload: Payload) -> Payload:
    """Call any handler, plain or async, with a parsed payload (tests, replays); the payload
    it answers with (a flag dropped)."""
    answer = await respond_flagged(handler, ctx, payload)
    return answer.payload if isinstance(answer, Flagged) else answer


async def respond_flagged(handler: Handler, ctx: HandlerContext, payload: Payload) -> Answer:
    response = handler(ctx, ParsedRequest(payload))
    if inspect.isawaitable(response):
        return await response
    return response
