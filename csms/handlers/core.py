"""Provisioning (B), authorization (C), availability (G), transactions (E) for all versions.

Spec references: 1.6 §4.2 BootNotification, §4.6 Heartbeat, §4.1 Authorize, §4.8
StartTransaction, §4.10 StopTransaction; 2.x Part 2 B01, G02, C01, E01-E07.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from csms.domain import flags
from csms.handlers.context import Flagged, HandlerContext, Request

log = logging.getLogger(__name__)

Payload = dict[str, Any]


def boot_notification(ctx: HandlerContext, _: Request) -> Payload:
    """Accept every station that got through the upgrade (the registry decided there), Pending
    for one let in with an expired certificate (A18); the interval is the heartbeat interval
    (1.6 §4.2; B01.FR.01), or when to boot again for Pending."""
    return {"status": ctx.boot_status, "currentTime": ctx.now(),
            "interval": ctx.heartbeat_interval_s}  # fmt: skip


def heartbeat(ctx: HandlerContext, _: Request) -> Payload:
    """The CSMS's time, for the station's clock (1.6 §4.6; G02)."""
    return {"currentTime": ctx.now()}


def authorize_16(ctx: HandlerContext, request: Request) -> Payload:
    """A status, never an error, for unknown tokens (1.6 §4.1, §4.2.2 of OCPP-J)."""
    payload = request.payload
    return {"idTagInfo": {"status": ctx.tokens.status(payload["idTag"])}}


def authorize_2x(ctx: HandlerContext, request: Request) -> Payload:
    """C01.FR.02: idTokenInfo.status for the presented idToken."""
    payload = request.payload
    return {"idTokenInfo": {"status": ctx.tokens.status(payload["idToken"]["idToken"])}}


def start_key(station_id: str, payload: Payload) -> str:
    """The semantic key of a 1.6 StartTransaction: a retry (same station, connector, idTag,
    timestamp, meterStart) must get the same transactionId (reliability.md §1.11)."""
    parts = (
        station_id,
        str(payload["connectorId"]),
        payload["idTag"],
        payload["timestamp"],
        str(payload["meterStart"]),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


async def start_transaction(ctx: HandlerContext, request: Request) -> Payload:
    """Allocate (or find again, for a retry) a transactionId unique across gateway processes
    and restarts; the token decides idTagInfo.status (1.6 §4.8)."""
    payload = request.payload
    transaction_id = await ctx.transaction_ids.allocate(
        start_key(ctx.station_id, payload), ctx.station_id
    )
    status = ctx.tokens.status(payload["idTag"])
    return {"transactionId": transaction_id, "idTagInfo": {"status": status}}


async def stop_transaction(ctx: HandlerContext, request: Request) -> Payload | Flagged:
    """Always acknowledged, also for unknown ids (incl. -1): refusing makes chargers retry
    and block the next start (reliability.md §1.11). idTagInfo only when an idTag came. An id
    we did not start for this station is flagged in the event (M31); if the look-up fails the
    answer goes out unflagged (an unavailable bucket must not turn into a CALLERROR)."""
    payload = request.payload
    answer: Payload = {}
    if "idTag" in payload:
        answer = {"idTagInfo": {"status": ctx.tokens.status(payload["idTag"])}}
    transaction_id = payload["transactionId"]
    try:
        started_by = await ctx.transaction_ids.started_by(transaction_id)
    except Exception:  # the flag is best effort, the answer is not
        log.warning("transaction %s: owner look-up failed", transaction_id, exc_info=True)
        return answer
    if started_by == ctx.station_id:
        return answer
    elsewhere = f" (started by {started_by})" if started_by else ""
    return Flagged(answer, f"{flags.UNKNOWN_TRANSACTION} {transaction_id}{elsewhere}")


def transaction_event(ctx: HandlerContext, request: Request) -> Payload:
    """TransactionEvent cannot be rejected (E01-E07); idTokenInfo when an idToken came."""
    payload = request.payload
    token = payload.get("idToken")
    if token is not None:
        return {"idTokenInfo": {"status": ctx.tokens.status(token["idToken"])}}
    return {}


def acknowledge(_: HandlerContext, __: Request) -> Payload:
    """Notifications whose response is empty: the content is kept in the event stream and
    folded by the projections (status, meter values, reports, events, firmware/log status)."""
    return {}


EMPTY_UNLESS: dict[object, bytes | None] = {acknowledge: None, transaction_event: b'"idToken"'}
"""Handlers that answer with the empty payload, always (None) or whenever the frame does not
contain these bytes: a byte test that can only err towards calling the handler (TransactionEvent
answers ``idTokenInfo`` only for a top-level ``idToken``, which cannot be there without the
bytes). The gateway answers those frames in one Rust call (``Codec.acknowledge``); a test holds
every such answer to the handler's."""
