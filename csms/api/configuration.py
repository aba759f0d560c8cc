"""``GET|PUT /api/v1/stations/{id}/configuration``: 1.6 configuration keys and 2.x variables
behind one pair of endpoints (2.x keys are spelled ``Component.Variable``)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, put
from litestar.params import FromPath, JSONBody, QueryParameter

from csms.api.commands import Wait
from csms.api.convenience import RESPONSES, ActionOutcome, Call, Versioned, dispatch, is_v16, send
from csms.api.dispatch import connected_station
from csms.api.problems import ProblemError
from csms.api.services import Services


class Setting(msgspec.Struct, kw_only=True):
    key: str
    """1.6 configuration key; 2.x ``Component.Variable``."""
    value: str | None = None
    readonly: bool | None = None
    status: str | None = None
    """2.x attribute status (Accepted, UnknownVariable, …)."""


class Settings(msgspec.Struct, kw_only=True):
    command_id: str
    ocpp_version: str
    settings: list[Setting]
    unknown: list[str] = []
    """1.6: keys the station does not know."""


def _component_variable(key: str) -> dict[str, Any]:
    component, sep, variable = key.partition(".")
    if not sep or not component or not variable:
        raise ProblemError(422, "invalid-payload", f"2.x keys are Component.Variable: {key!r}")
    return {"component": {"name": component}, "variable": {"name": variable}}


def _key_of(item: dict[str, Any]) -> str:
    return f"{item['component']['name']}.{item['variable']['name']}"


@get(
    "/stations/{station_id:str}/configuration",
    summary="Get configuration / variables",
    responses=RESPONSES,
)
async def get_configuration(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    key: Annotated[list[str] | None, QueryParameter(max_items=100)] = None,
    wait: Wait = 30.0,
) -> Settings:
    """1.6 GetConfiguration (no key: all); 2.x GetVariables (keys ``Component.Variable``)."""
    presence = await connected_station(services, station_id)
    keys = key or []
    if is_v16(presence):
        payload: dict[str, Any] = {"key": keys} if keys else {}
        outcome = await send(request, services, presence, "GetConfiguration", payload, wait)
        result = outcome.result or {}
        settings = [
            Setting(key=k["key"], value=k.get("value"), readonly=k.get("readonly"))
            for k in result.get("configurationKey", [])
        ]
        unknown = list(result.get("unknownKey", []))
        return Settings(
            command_id=outcome.command_id, ocpp_version="1.6", settings=settings, unknown=unknown
        )
    if not keys:
        raise ProblemError(
            422, "invalid-payload", "2.x: name the variables (key=Component.Variable)"
        )
    payload = {"getVariableData": [_component_variable(k) for k in keys]}
    outcome = await send(request, services, presence, "GetVariables", payload, wait)
    settings = [
        Setting(key=_key_of(r), value=r.get("attributeValue"), status=r.get("attributeStatus"))
        for r in (outcome.result or {}).get("getVariableResult", [])
    ]
    return Settings(
        command_id=outcome.command_id, ocpp_version=presence.ocpp_version, settings=settings
    )


class SetSetting(msgspec.Struct, kw_only=True):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    value: Annotated[str, msgspec.Meta(max_length=1000)]


def _first_attribute_status(result: dict[str, Any]) -> str | None:
    results = result.get("setVariableResult", [])
    status = results[0].get("attributeStatus") if results else None
    return status if isinstance(status, str) else None


SET_CONFIGURATION = Versioned(
    v16=Call("ChangeConfiguration", lambda d: {"key": d.key, "value": d.value}),
    v2=Call(
        "SetVariables",
        lambda d: {"setVariableData": [{"attributeValue": d.value, **_component_variable(d.key)}]},
        _first_attribute_status,
    ),
)


@put(
    "/stations/{station_id:str}/configuration",
    summary="Set configuration / a variable",
    responses=RESPONSES,
)
async def set_configuration(
    request: Request[Any, Any, Any],
    services: Services,
    station_id: FromPath[str],
    data: JSONBody[SetSetting],
    wait: Wait = 30.0,
) -> ActionOutcome:
    """1.6 ChangeConfiguration; 2.x SetVariables (``status`` is the attribute status)."""
    presence = await connected_station(services, station_id)
    return await dispatch(request, services, presence, SET_CONFIGURATION, data, wait)


HANDLERS = [get_configuration, set_configuration]
