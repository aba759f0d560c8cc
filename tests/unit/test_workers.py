"""The settings a ``--workers`` child gets, and that they survive the trip through CSMS_*."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from csms import settings as settings_module
from csms.settings import Settings
from csms.workers import settings_environment, worker_settings


def parent() -> Settings:
    return Settings(
        host="127.0.0.1",
        ocpp_port=0,
        data_dir=Path("/var/lib/csms"),
        workers=3,
        tls_port=0,
        tls_cert_file=Path("/etc/csms/server.pem"),
        tls_key_file=Path("/etc/csms/server.key"),
        accept_unknown_tokens=False,
        ping_interval_s=12.5,
        unknown_stations="reject",
    )


def test_a_child_listens_on_the_resolved_ports_of_the_parent_without_api_or_projector() -> None:
    child = worker_settings(parent(), 2, "gw", "nats://127.0.0.1:4222", 9100, 9443)
    assert (child.ocpp_port, child.tls_port, child.nats_url) == (
        9100,
        9443,
        "nats://127.0.0.1:4222",
    )
    assert (child.workers, child.reuse_port, child.api, child.projections) == (
        1,
        True,
        False,
        False,
    )
    assert child.node_id == "gw-w2"  # the same after a restart: presence closes its old entries
    assert child.unknown_stations == "reject"
    assert child.ping_interval_s == 12.5


def test_the_environment_gives_the_child_back_exactly_its_settings() -> None:
    child = worker_settings(parent(), 1, "gw", "nats://127.0.0.1:4222", 9100, None)
    base = {"PATH": "/usr/bin", "CSMS_TLS_PORT": "7000", "CSMS_API_PORT": "1", "OTHER": "x"}
    env = settings_environment(child, base)
    assert env["PATH"] == "/usr/bin"
    assert env["OTHER"] == "x"
    assert "CSMS_TLS_PORT" not in env  # unset in the child: the parent's variable is dropped
    with mock.patch.dict(os.environ, env, clear=True):
        assert settings_module.load(None, {}) == child


def test_the_parent_settings_also_round_trip() -> None:
    with mock.patch.dict(os.environ, settings_environment(parent(), {}), clear=True):
        assert settings_module.load(None, {}) == parent()
