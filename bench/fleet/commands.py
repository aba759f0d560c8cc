"""Answers of a simulated station to CALLs from the CSMS (Reset, Remote/RequestStart,
TriggerMessage, Get/ChangeConfiguration, Get/SetVariables, ...): schema-valid CALLRESULT payloads
per version.

``answer`` is pure (payload in, payload out); what the station does next (reboot, start or stop a
transaction, send the triggered message) is decided in ``bench.fleet.station`` from the action.
An action not listed here is answered with a CALLERROR NotImplemented.
"""

from __future__ import annotations

from typing import Any

CONFIGURATION_16 = {
    "HeartbeatInterval": "300",
    "MeterValueSampleInterval": "60",
    "ClockAlignedDataInterval": "900",
    "MeterValuesSampledData": "Current.Import,Voltage,Energy.Active.Import.Register,"
    "Power.Active.Import,Current.Offered,SoC",
    "NumberOfConnectors": "1",
    "AuthorizeRemoteTxRequests": "false",
}
"""The 1.6 configuration keys a simulated station knows (GetConfiguration answers them)."""

VARIABLES_2X = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
    ("AlignedDataCtrlr", "Interval"): "900",
    ("SecurityCtrlr", "SecurityProfile"): "1",
    ("ChargingStation", "Model"): "SimAC-22",
}
"""2.x (component, variable) → value (GetVariables answers them, others UnknownComponent)."""

ACCEPTED = {"status": "Accepted"}

SIMPLE_16 = {
    "Reset": ACCEPTED,
    "RemoteStartTransaction": ACCEPTED,
    "RemoteStopTransaction": ACCEPTED,
    "TriggerMessage": ACCEPTED,
    "ChangeAvailability": ACCEPTED,
    "ClearCache": ACCEPTED,
    "UnlockConnector": {"status": "Unlocked"},
    "DataTransfer": {"status": "UnknownVendorId"},
}

SIMPLE_2X = {
    "Reset": ACCEPTED,
    "RequestStartTransaction": ACCEPTED,
    "RequestStopTransaction": ACCEPTED,
    "TriggerMessage": ACCEPTED,
    "ChangeAvailability": ACCEPTED,
    "ClearCache": ACCEPTED,
    "GetBaseReport": ACCEPTED,
    "UnlockConnector": {"status": "Unlocked"},
    "DataTransfer": {"status": "UnknownVendorId"},
}

TRIGGERABLE = {"Heartbeat", "StatusNotification", "MeterValues"}


def _get_configuration(payload: dict[str, Any]) -> dict[str, Any]:
    wanted = payload.get("key") or list(CONFIGURATION_16)
    known = [k for k in wanted if k in CONFIGURATION_16]
    answer: dict[str, Any] = {
        "configurationKey": [
            {"key": k, "readonly": k == "NumberOfConnectors", "value": CONFIGURATION_16[k]}
            for k in known
        ]
    }
    unknown = [k for k in wanted if k not in CONFIGURATION_16]
    if unknown:
        answer["unknownKey"] = unknown
    return answer


def _change_configuration(payload: dict[str, Any]) -> dict[str, Any]:
    key = payload.get("key", "")
    if key not in CONFIGURATION_16 and key != "AuthorizationKey":
        return {"status": "NotSupported"}
    if key == "NumberOfConnectors":
        return {"status": "Rejected"}
    return ACCEPTED  # accepted but not kept: every simulated station reports the same values


def _names(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return item["component"], item["variable"]


def _get_variables(payload: dict[str, Any]) -> dict[str, Any]:
    results = []
    for item in payload.get("getVariableData", []):
        component, variable = _names(item)
        value = VARIABLES_2X.get((component.get("name", ""), variable.get("name", "")))
        result: dict[str, Any] = {
            "attributeStatus": "Accepted" if value is not None else "UnknownComponent",
            "component": component,
            "variable": variable,
        }
        if value is not None:
            result["attributeValue"] = value
        if "attributeType" in item:
            result["attributeType"] = item["attributeType"]
        results.append(result)
    return {"getVariableResult": results}


def _set_variables(payload: dict[str, Any]) -> dict[str, Any]:
    results = []
    for item in payload.get("setVariableData", []):
        component, variable = _names(item)
        key = (component.get("name", ""), variable.get("name", ""))
        known = key in VARIABLES_2X or key == ("SecurityCtrlr", "BasicAuthPassword")
        result: dict[str, Any] = {
            "attributeStatus": "Accepted" if known else "UnknownComponent",
            "component": component,
            "variable": variable,
        }
        if "attributeType" in item:
            result["attributeType"] = item["attributeType"]
        results.append(result)
    return {"setVariableResult": results}


def answer(version: str, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The CALLRESULT payload for the CSMS's CALL, or None: not implemented by the simulator."""
    if action == "TriggerMessage":
        wanted = payload.get("requestedMessage", "")
        return ACCEPTED if wanted in TRIGGERABLE else {"status": "NotImplemented"}
    if version == "1.6":
        if action == "GetConfiguration":
            return _get_configuration(payload)
        if action == "ChangeConfiguration":
            return _change_configuration(payload)
        return SIMPLE_16.get(action)
    if action == "GetVariables":
        return _get_variables(payload)
    if action == "SetVariables":
        return _set_variables(payload)
    return SIMPLE_2X.get(action)
