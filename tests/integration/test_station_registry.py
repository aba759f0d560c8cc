"""``csms stations`` against a running CSMS: the gateway's copy follows the bucket (KV watch)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from csms.registry_cli import rotate_password
from streams.embedded import EmbeddedNats
from streams.registry import StationRecord, StationRegistry
from tests.integration.secure_client import basic, connect, upgrade
from tests.integration.test_security import P1, P1B, Secure, make_pki, start_secure


@pytest.fixture
async def secure(tmp_path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Secure]:
    pki = make_pki(tmp_path / "pki")
    running = await start_secure(tmp_path, nats_server, pki)
    yield Secure(running, pki, nats_server.url)
    await running.stop()


async def stations(nats_url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "stations", "--nats-url", nats_url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def until(
    registry: StationRegistry, condition: Callable[[], bool], timeout_s: float = 10.0
) -> None:
    """Wait (on the registry's change notifications, not a timer) for ``condition``."""

    async def wait() -> None:
        while not condition():
            await registry.changed()

    await asyncio.wait_for(wait(), timeout_s)


def registry_of(secure: Secure) -> StationRegistry:
    assert secure.running.registry is not None
    return secure.running.registry


async def test_add_list_set_password_remove(secure: Secure) -> None:
    registry = registry_of(secure)
    code, out = await stations(secure.nats_url, "add", "CLI-1", "--profile", "1",
                               "--generate-password")  # fmt: skip
    assert code == 0, out
    password = next(line.split(": ", 1)[1] for line in out.splitlines() if "password" in line)
    assert len(password) == 40
    await until(registry, lambda: registry.lookup("CLI-1") is not None)
    station = await connect(secure.url("CLI-1"), authorization=basic("CLI-1", password))
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()

    code, out = await stations(secure.nats_url, "list")
    listed = [json.loads(line) for line in out.splitlines()]
    assert {"identity": "CLI-1", "profile": 1, "password": True} in [
        {k: r[k] for k in ("identity", "profile", "password")} for r in listed
    ]
    assert password not in out
    assert "pbkdf2" not in out

    # A9 (through the registry): once replaced, the old password stops working.
    before = registry.lookup("CLI-1")
    new_password = "the-new-password-of-cli-1"
    code, out = await stations(secure.nats_url, "set-password", "CLI-1", "--password", new_password)
    assert code == 0, out
    await until(registry, lambda: registry.lookup("CLI-1") != before)
    old = await upgrade(secure.port, "/ocpp/CLI-1", authorization=basic("CLI-1", password))
    assert old.status == 401
    station = await connect(secure.url("CLI-1"), authorization=basic("CLI-1", new_password))
    await station.close()

    code, out = await stations(secure.nats_url, "remove", "CLI-1")
    assert code == 0, out
    await until(registry, lambda: registry.lookup("CLI-1") is None)
    gone = await upgrade(secure.port, "/ocpp/CLI-1", authorization=basic("CLI-1", new_password))
    assert gone.status == 401  # unknown stations are refused here


@pytest.mark.parametrize(
    "args",
    [
        ["add", "X", "--profile", "1", "--password", "fifteen-chars15"],  # A8: 15 characters
        ["add", "X", "--profile", "1", "--password", "y" * 65],
        ["add", "X", "--profile", "1"],  # profile 1 without a password
        ["add", "X", "--profile", "3"],  # profile 3 without a serial
    ],
)
async def test_provisioning_rules(nats_server: EmbeddedNats, args: list[str]) -> None:
    code, out = await stations(nats_server.url, *args)
    assert code == 2, out
    code, out = await stations(nats_server.url, "list")
    assert out.strip() == ""


async def test_profile_3_registered_from_the_cli(secure: Secure) -> None:
    registry = registry_of(secure)
    cert = secure.pki.ca.issue("cli-station", "SN-CLI")
    code, out = await stations(secure.nats_url, "add", "CLI-3", "--profile", "3",
                               "--cert-serial", "SN-CLI")  # fmt: skip
    assert code == 0, out
    await until(registry, lambda: registry.lookup("CLI-3") is not None)
    station = await connect(secure.url("CLI-3", tls=True), tls=secure.tls(cert))
    assert (await station.call("Heartbeat", {}))[0] == 3
    await station.close()


@pytest.mark.parametrize(
    ("subprotocol", "status"),
    [
        ("ocpp2.0.1", "Accepted"),
        ("ocpp2.0.1", "Rejected"),
        ("ocpp1.6", "Accepted"),
        ("ocpp1.6", "NotSupported"),
    ],
)
async def test_a9_a10_password_change_over_ocpp(
    secure: Secure, subprotocol: str, status: str
) -> None:
    registry = registry_of(secure)
    station = await connect(secure.url("SP1-A"), subprotocol, authorization=basic("SP1-A", P1))
    assert secure.running.presence is not None
    await secure.running.presence.flush()
    rotation = asyncio.create_task(
        rotate_password(secure.running.nc, registry, "SP1-A", timeout_s=10)
    )
    call = await station.receive()
    if subprotocol == "ocpp1.6":
        assert call[2] == "ChangeConfiguration"
        assert call[3]["key"] == "AuthorizationKey"
        sent = call[3]["value"]
        result: dict[str, Any] = {"status": status}
    else:
        assert call[2] == "SetVariables"
        data = call[3]["setVariableData"][0]
        assert data["variable"]["name"] == "BasicAuthPassword"
        sent = data["attributeValue"]
        result = {"setVariableResult": [{"attributeStatus": status,
                                         "component": data["component"],
                                         "variable": data["variable"]}]}  # fmt: skip
    # Until the station has answered, both passwords work (the gateway's view).
    assert registry.check_password("SP1-A", sent.encode())
    assert registry.check_password("SP1-A", P1.encode())
    station.send_text(json.dumps([3, call[1], result]))
    answer, password = await rotation
    assert answer == status
    assert password == sent
    path, old, new = "/ocpp/SP1-A", basic("SP1-A", P1), basic("SP1-A", password)
    old_ok = await upgrade(secure.port, path, subprotocol=subprotocol, authorization=old)
    new_ok = await upgrade(secure.port, path, subprotocol=subprotocol, authorization=new)
    if status == "Accepted":  # A9: the old password stops working
        assert (old_ok.status, new_ok.status) == (401, 101)
    else:  # A10: the old one stays, the new one is forgotten
        assert (old_ok.status, new_ok.status) == (101, 401)


async def test_a12_after_an_upgrade_to_profile_2_plain_ws_is_refused(secure: Secure) -> None:
    registry = registry_of(secure)
    code, out = await stations(secure.nats_url, "set-profile", "SP1-B", "2")
    assert code == 0, out
    await until(registry, lambda: getattr(registry.lookup("SP1-B"), "profile", 0) == 2)
    plain = await upgrade(secure.port, "/ocpp/SP1-B", authorization=basic("SP1-B", P1B))
    assert plain.status == 401
    tls = await upgrade(secure.tls_port, "/ocpp/SP1-B", authorization=basic("SP1-B", P1B),
                        tls=secure.tls())  # fmt: skip
    assert tls.status == 101
    code, out = await stations(secure.nats_url, "set-profile", "SP1-B", "3")
    assert code == 2  # profile 3 needs the certificate serial


async def test_the_gateways_copy_survives_a_nats_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    gateway_nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        copy = await StationRegistry.open(gateway_nc.jetstream())
        await copy.start()
        await copy.put(StationRecord(identity="BEFORE", profile=0))
        await server.kill()  # SIGKILL, then the same server again on the same port and store
        server = EmbeddedNats(tmp_path / "nats", port=server.port)
        await server.start()
        admin_nc = await nats.connect(server.url)
        admin = await StationRegistry.open(admin_nc.jetstream())
        await admin.put(StationRecord(identity="AFTER", profile=1))
        await admin.remove("BEFORE")
        await admin_nc.close()
        # nats-py resets the watch's ordered consumer after two missed heartbeats (~10-20 s)
        await until(copy, lambda: copy.lookup("AFTER") is not None, timeout_s=45)
        await until(copy, lambda: copy.lookup("BEFORE") is None)
        await copy.stop()
    finally:
        await gateway_nc.close()
        await server.stop()


async def test_without_a_nats_url_the_embedded_store_under_data_dir_is_used(
    tmp_path: Path,
) -> None:
    """``streams.embedded.admin_connection``: each command starts nats-server on the store
    under ``--data-dir`` and stops it; what one wrote, the next one reads."""

    async def offline(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "stations", "--data-dir", str(tmp_path), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "CSMS_NATS_URL"},
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode()

    code, out = await offline("add", "OFF-1", "--profile", "0")
    assert code == 0, out
    code, out = await offline("list")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["identity"] == "OFF-1"
    assert (tmp_path / "nats" / "jetstream").is_dir()
