"""Station state facts: StatusNotification, BootNotification, connections. Pure."""

from __future__ import annotations

from typing import Any

from streams.projections.meter import Where
from streams.projections.rows import Row, int_column, parse_time_ms


def status_notification(where: Where, payload: dict[str, Any]) -> Row:
    at_ms = parse_time_ms(payload.get("timestamp")) or where.received_ms
    if where.ocpp_version == "1.6":
        evse_id = None
        connector_id = int_column(payload.get("connectorId"))
        status = str(payload.get("status") or "")
        error_code = str(payload.get("errorCode") or "")
    else:
        evse_id = int_column(payload.get("evseId"))
        connector_id = int_column(payload.get("connectorId"))
        status = str(payload.get("connectorStatus") or "")
        error_code = ""
    return [
        where.station_id,
        at_ms,
        where.stream_seq,
        where.idx,
        evse_id,
        connector_id,
        status,
        error_code,
        str(payload.get("vendorErrorCode") or ""),
        str(payload.get("info") or ""),
    ]


def boot_notification(where: Where, payload: dict[str, Any]) -> Row:
    if where.ocpp_version == "1.6":
        vendor = payload.get("chargePointVendor")
        model = payload.get("chargePointModel")
        firmware = payload.get("firmwareVersion")
        serial = payload.get("chargePointSerialNumber") or payload.get("chargeBoxSerialNumber")
    else:
        station = payload.get("chargingStation") or {}
        vendor = station.get("vendorName")
        model = station.get("model")
        firmware = station.get("firmwareVersion")
        serial = station.get("serialNumber")
    return [
        where.station_id,
        where.received_ms,
        where.stream_seq,
        where.idx,
        str(vendor or ""),
        str(model or ""),
        str(firmware or ""),
        str(serial or ""),
    ]
