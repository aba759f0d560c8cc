"""``/api/v1/stations/{id}/registration``: a station's entry in the station registry as the
operator may see it (no password hash), and the one field the API may change so far: the A18
exception ``allow_expired_certificate`` (profile 3 only). Credentials stay with
``csms stations`` (ADR 0004)."""

from __future__ import annotations

import msgspec
from litestar import get, put
from litestar.params import FromPath, JSONBody

from csms.api.dispatch import MAX_STATION_ID
from csms.api.problems import ProblemError, problems
from csms.api.services import Services
from streams.registry import StationRecord


class Registration(msgspec.Struct, kw_only=True):
    identity: str
    profile: int
    password: bool
    """Whether a password is set (never the password or its hash)."""
    cert_serial: str | None
    cert_fingerprint: str | None
    allow_expired_certificate: bool
    """A18: the station may connect with its expired certificate; answered BootNotification
    Pending while the CSMS renews it (cleared once a renewal was accepted)."""
    renewal_under_way: bool


class AllowExpired(msgspec.Struct, kw_only=True):
    allowed: bool


def _view(record: StationRecord) -> Registration:
    return Registration(
        identity=record.identity,
        profile=record.profile,
        password=record.password_hash is not None,
        cert_serial=record.cert_serial,
        cert_fingerprint=record.cert_fingerprint,
        allow_expired_certificate=record.allow_expired_certificate,
        renewal_under_way=record.csr_expected,
    )


async def _record(services: Services, station_id: str) -> StationRecord:
    if not 0 < len(station_id) <= MAX_STATION_ID:
        raise ProblemError(404, "station-unregistered", "no station has an identity of that length")
    if services.registry is None:  # not reached in ``csms serve`` (ApiServices.open opens it)
        raise ProblemError(404, "station-unregistered", "no station registry here")
    record = await services.registry.get(station_id)
    if record is None:
        raise ProblemError(404, "station-unregistered", f"station {station_id!r} is not registered")
    return record


@get(
    "/stations/{station_id:str}/registration",
    summary="A station's registry entry (no secrets)",
    responses=problems(401, 404),
)
async def get_registration(services: Services, station_id: FromPath[str]) -> Registration:
    return _view(await _record(services, station_id))


@put(
    "/stations/{station_id:str}/registration/allow-expired-certificate",
    summary="Allow a profile-3 station in with its expired certificate (A18)",
    description="While allowed, the station's expired certificate (issuers still valid) is "
    "accepted: BootNotification Pending, the certificate renewed over OCPP at once (A02). "
    "Cleared by the CSMS once the station accepted its new certificate. Needs `tls_ca_key_file`"
    " on the gateways; without it such a station is refused all the same.",
    responses=problems(400, 401, 404, 422),
)
async def put_allow_expired(
    services: Services, station_id: FromPath[str], data: JSONBody[AllowExpired]
) -> Registration:
    record = await _record(services, station_id)
    if data.allowed and record.profile != 3:
        raise ProblemError(
            422, "not-profile-3", f"{station_id!r} is registered for profile {record.profile}"
        )
    assert services.registry is not None  # _record checked it
    await services.registry.allow_expired_certificate(station_id, data.allowed)
    return _view(msgspec.structs.replace(record, allow_expired_certificate=data.allowed))


HANDLERS = [get_registration, put_allow_expired]
