"""``csms stations …``: the station registry from the command line (add, list, remove,
set-password, set-profile, rotate-password, renew-certificate, allow-expired-certificate).
Talks to NATS (``--nats-url`` / ``CSMS_NATS_URL`` / csms.toml); without a URL it opens the
embedded store under ``--data-dir`` (only while ``csms serve`` is not running).

A generated password is printed once and never stored in clear (it is the station's to keep).
``rotate-password`` changes it over OCPP (1.6 ChangeConfiguration AuthorizationKey, 2.x
SetVariables SecurityCtrlr.BasicAuthPassword) through the gateway holding the station: the new
password works from the moment it is sent, the old one stops only when the station answered
Accepted (A01.FR.03); on any other answer the new one is forgotten (A01.FR.04); on RebootRequired
both stay valid until the next rotation or ``set-password``. ``renew-certificate`` does the same
for a profile-3 station's certificate (``csms.certificates``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient

from csms import settings as settings_module
from csms.certificates import DEFAULT_VALIDITY_DAYS, CertificateAuthority, renew_certificate
from csms.domain.commands import CommandRequest
from streams.commands import CommandRouter
from streams.embedded import admin_connection
from streams.presence import PresenceReader
from streams.presence import open_bucket as open_presence
from streams.registry import (
    StationRecord,
    StationRegistry,
    check_password_rules,
    generate_password,
    hash_password,
)


def add_parser(sub: Any) -> None:
    """Register ``stations`` and its subcommands on the ``csms`` parser."""
    stations = sub.add_parser("stations", help="the station registry (security profiles)")
    stations.add_argument("--nats-url")
    stations.add_argument("--data-dir")
    stations.add_argument("--config", help="a csms.toml file")
    actions = stations.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register (or replace) a station")
    add.add_argument("identity")
    add.add_argument("--profile", type=int, choices=[0, 1, 2, 3], required=True)
    _password_arguments(add)
    add.add_argument("--cert-serial", help="profile 3: the serial in the certificate's CN")
    add.add_argument("--cert-fingerprint", help="profile 3: pin one certificate (SHA-256 hex)")
    add.add_argument(
        "--allow-expired-certificate",
        action="store_true",
        help="profile 3: accept its certificate once expired: Boot Pending + renewal (A18)",
    )
    actions.add_parser("list", help="registered stations as JSON lines (no secrets)")
    remove = actions.add_parser("remove", help="unregister a station")
    remove.add_argument("identity")
    change = actions.add_parser("set-password", help="replace a station's password")
    change.add_argument("identity")
    _password_arguments(change)
    profile = actions.add_parser(
        "set-profile", help="change a station's security profile (the floor it must use)"
    )
    profile.add_argument("identity")
    profile.add_argument("profile", type=int, choices=[0, 1, 2, 3])
    profile.add_argument("--cert-serial", help="needed for profile 3 unless already set")
    rotate = actions.add_parser("rotate-password", help="change a connected station's password")
    rotate.add_argument("identity")
    rotate.add_argument("--password", help="default: 40 generated characters")
    rotate.add_argument("--timeout", type=float, default=30.0, help="seconds for its answer")
    renew = actions.add_parser(
        "renew-certificate",
        help="renew a connected profile-3 station's certificate over OCPP (A02)",
    )
    renew.add_argument("identity")
    renew.add_argument("--ca-cert", help="default: the tls_ca_file setting")
    renew.add_argument("--ca-key", help="default: the tls_ca_key_file setting")
    renew.add_argument("--days", type=int, default=DEFAULT_VALIDITY_DAYS, help="validity")
    renew.add_argument("--timeout", type=float, default=60.0, help="seconds for each answer")
    expired = actions.add_parser(
        "allow-expired-certificate",
        help="profile 3: let a station in with its expired certificate, answered BootNotification "
        "Pending while the CSMS renews it (A18; cleared once a renewal is accepted)",
    )
    expired.add_argument("identity")
    expired.add_argument("allowed", choices=["on", "off"])


def _password_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password", help="16 to 64 passwordString characters")
    group.add_argument("--generate-password", action="store_true", help="40 random characters")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_with_registry(args, _ACTIONS[args.action]))
    except ValueError as err:  # RenewalError included
        print(f"csms stations: {err}")
        return 2


async def _with_registry(
    args: argparse.Namespace,
    action: Callable[[StationRegistry, argparse.Namespace], Awaitable[int]],
) -> int:
    overrides = {"nats_url": args.nats_url, "data_dir": args.data_dir}
    config = settings_module.load(Path(args.config) if args.config else None, overrides)
    async with admin_connection(config.nats_url, config.data_dir, "csms-stations") as nc:
        registry = await StationRegistry.open(nc.jetstream(), replicas=config.stream_replicas)
        args.nc, args.replicas, args.settings = nc, config.stream_replicas, config
        return await action(registry, args)


def _new_password(args: argparse.Namespace) -> str | None:
    if args.generate_password:
        password = generate_password()
        print(f"password: {password}")
        return password
    if args.password is not None:
        check_password_rules(args.password)
        return str(args.password)
    return None


async def _add(registry: StationRegistry, args: argparse.Namespace) -> int:
    password = _new_password(args)
    if args.profile in (1, 2) and password is None:
        raise ValueError("profiles 1 and 2 need --password or --generate-password")
    if args.profile == 3 and not args.cert_serial:
        raise ValueError("profile 3 needs --cert-serial")
    if args.allow_expired_certificate and args.profile != 3:
        raise ValueError("--allow-expired-certificate is for profile 3 stations")
    record = StationRecord(
        identity=args.identity,
        profile=args.profile,
        password_hash=hash_password(password) if password is not None else None,
        cert_serial=args.cert_serial,
        cert_fingerprint=args.cert_fingerprint.lower() if args.cert_fingerprint else None,
        allow_expired_certificate=args.allow_expired_certificate,
    )
    await registry.put(record)
    print(f"added {args.identity} (profile {args.profile})")
    return 0


async def _list(registry: StationRegistry, _: argparse.Namespace) -> int:
    for record in await registry.all():
        print(
            json.dumps(
                {
                    "identity": record.identity,
                    "profile": record.profile,
                    "password": record.password_hash is not None,
                    "cert_serial": record.cert_serial,
                    "cert_fingerprint": record.cert_fingerprint,
                    "allow_expired_certificate": record.allow_expired_certificate,
                }
            )
        )
    return 0


async def _remove(registry: StationRegistry, args: argparse.Namespace) -> int:
    if not await registry.remove(args.identity):
        print(f"{args.identity} is not registered")
        return 1
    print(f"removed {args.identity}")
    return 0


async def _set_password(registry: StationRegistry, args: argparse.Namespace) -> int:
    record = await registry.get(args.identity)
    if record is None:
        print(f"{args.identity} is not registered")
        return 1
    password = _new_password(args)
    if password is None:
        raise ValueError("give --password or --generate-password")
    await registry.put(
        msgspec.structs.replace(
            record, password_hash=hash_password(password), pending_password_hash=None
        )
    )  # the other fields (certificate, A18 flag) stay
    print(f"password of {args.identity} replaced")
    return 0


async def _set_profile(registry: StationRegistry, args: argparse.Namespace) -> int:
    """Raise a station after its upgrade (A05.FR.09: it is then refused on a lower profile),
    or lower it: lowering is only ever done here, never over OCPP (A00.FR.005)."""
    record = await registry.get(args.identity)
    if record is None:
        print(f"{args.identity} is not registered")
        return 1
    serial = args.cert_serial or record.cert_serial
    if args.profile == 3 and not serial:
        raise ValueError("profile 3 needs --cert-serial")
    if args.profile in (1, 2) and record.password_hash is None:
        raise ValueError("profiles 1 and 2 need a password: set-password first")
    await registry.put(msgspec.structs.replace(record, profile=args.profile, cert_serial=serial))
    print(f"{args.identity}: profile {record.profile} -> {args.profile}")
    return 0


async def _allow_expired(registry: StationRegistry, args: argparse.Namespace) -> int:
    """A18: the operator's explicit exception for one station's expired certificate."""
    record = await registry.get(args.identity)
    if record is None:
        print(f"{args.identity} is not registered")
        return 1
    allowed = args.allowed == "on"
    if allowed and record.profile != 3:
        raise ValueError(f"{args.identity} is registered for profile {record.profile}, not 3")
    before = await registry.allow_expired_certificate(args.identity, allowed)
    print(f"{args.identity}: allow_expired_certificate {str(before).lower()} -> "
          f"{str(allowed).lower()}")  # fmt: skip
    return 0


async def rotate_password(
    nc: NatsClient,
    registry: StationRegistry,
    identity: str,
    password: str | None = None,
    timeout_s: float = 30.0,
    replicas: int = 1,
) -> tuple[str, str]:
    """Send a new password to the connected station; returns (its answer, the password).
    The answer is the status it sent, or the command's outcome when there was none."""
    if await registry.get(identity) is None:
        raise ValueError(f"{identity} is not registered")
    presence = PresenceReader(await open_presence(nc.jetstream(), replicas))
    where = await presence.find(identity)
    if where is None or not where.connected:
        raise ValueError(f"{identity} is not connected")
    version = where.ocpp_version
    if password is None:
        password = generate_password(version)
    elif version != "1.6":
        check_password_rules(password)
    payload: dict[str, Any]
    if version == "1.6":
        action, payload = "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}
    else:
        action = "SetVariables"
        payload = {
            "setVariableData": [
                {
                    "attributeValue": password,
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                }
            ]
        }
    await registry.stage_password(identity, password)
    request = CommandRequest(
        command_id=uuid.uuid4().hex,
        station_id=where.station_id,
        action=action,
        payload=payload,
        timeout_s=timeout_s,
        requested_by="csms stations rotate-password",
    )
    outcome = await CommandRouter(nc, presence).send(request)
    answer: str = outcome.outcome
    if outcome.outcome == "answered" and outcome.result is not None:
        results = outcome.result.get("setVariableResult") or [outcome.result]
        answer = str(results[0].get("attributeStatus") or results[0].get("status"))
    if answer != "RebootRequired":
        await registry.settle_password(identity, accepted=answer == "Accepted")
    return answer, password


async def _rotate(registry: StationRegistry, args: argparse.Namespace) -> int:
    answer, password = await rotate_password(
        args.nc, registry, args.identity, args.password, args.timeout, args.replicas
    )
    print(f"station answered: {answer}")
    if answer in ("Accepted", "RebootRequired"):
        if args.password is None:
            print(f"password: {password}")
        return 0
    print("the old password stays valid")
    return 1


async def _renew(registry: StationRegistry, args: argparse.Namespace) -> int:
    settings: settings_module.Settings = args.settings
    cert = args.ca_cert or settings.tls_ca_file
    key = args.ca_key or settings.tls_ca_key_file
    if cert is None or key is None:
        raise ValueError("give --ca-cert and --ca-key (or tls_ca_file and tls_ca_key_file)")
    authority = CertificateAuthority(Path(cert), Path(key), settings.cso_name, args.days)
    presence = PresenceReader(await open_presence(args.nc.jetstream(), args.replicas))
    answer, signed = await renew_certificate(
        args.nc, registry, presence, authority, args.identity, args.timeout
    )
    print(f"station answered: {answer}")
    if answer == "Accepted" and signed is not None:
        print(f"new certificate: CN {signed.common_name}, SHA-256 {signed.fingerprint}")
        return 0
    print("the old certificate stays valid")
    return 1


_ACTIONS: dict[str, Callable[[StationRegistry, argparse.Namespace], Awaitable[int]]] = {
    "add": _add,
    "list": _list,
    "remove": _remove,
    "set-password": _set_password,
    "rotate-password": _rotate,
    "set-profile": _set_profile,
    "renew-certificate": _renew,
    "allow-expired-certificate": _allow_expired,
}
