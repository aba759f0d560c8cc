"""``csms stations …``: the station registry from the command line (add, list, remove,
set-password). Talks to NATS (``--nats-url`` / ``CSMS_NATS_URL`` / csms.toml); without a URL it
opens the embedded store under ``--data-dir`` (only while ``csms serve`` is not running).

A generated password is printed once and never stored in clear (it is the station's to keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

from csms import settings as settings_module
from streams.embedded import EmbeddedNats
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
    actions.add_parser("list", help="registered stations as JSON lines (no secrets)")
    remove = actions.add_parser("remove", help="unregister a station")
    remove.add_argument("identity")
    change = actions.add_parser("set-password", help="replace a station's password")
    change.add_argument("identity")
    _password_arguments(change)


def _password_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password", help="16 to 64 passwordString characters")
    group.add_argument("--generate-password", action="store_true", help="40 random characters")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_with_registry(args, _ACTIONS[args.action]))
    except ValueError as err:
        print(f"csms stations: {err}")
        return 2


async def _with_registry(
    args: argparse.Namespace,
    action: Callable[[StationRegistry, argparse.Namespace], Awaitable[int]],
) -> int:
    overrides = {"nats_url": args.nats_url, "data_dir": args.data_dir}
    config = settings_module.load(Path(args.config) if args.config else None, overrides)
    embedded = None
    url = config.nats_url
    if url is None:
        embedded = EmbeddedNats(config.data_dir / "nats")
        await embedded.start()
        url = embedded.url
    nc = await nats.connect(url, name="csms-stations")
    try:
        registry = await StationRegistry.open(nc.jetstream(), replicas=config.stream_replicas)
        return await action(registry, args)
    finally:
        await nc.drain()
        if embedded is not None:
            await embedded.stop()


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
    record = StationRecord(
        identity=args.identity,
        profile=args.profile,
        password_hash=hash_password(password) if password is not None else None,
        cert_serial=args.cert_serial,
        cert_fingerprint=args.cert_fingerprint.lower() if args.cert_fingerprint else None,
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
        StationRecord(
            identity=record.identity,
            profile=record.profile,
            password_hash=hash_password(password),
            cert_serial=record.cert_serial,
            cert_fingerprint=record.cert_fingerprint,
        )
    )
    print(f"password of {args.identity} replaced")
    return 0


_ACTIONS: dict[str, Callable[[StationRegistry, argparse.Namespace], Awaitable[int]]] = {
    "add": _add,
    "list": _list,
    "remove": _remove,
    "set-password": _set_password,
}
