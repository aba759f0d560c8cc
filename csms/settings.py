"""Settings of ``csms serve``: defaults < csms.toml < CSMS_* environment < command-line flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    ocpp_port: int = 9000
    api_port: int = 8080
    data_dir: Path = Path(".csms")
    nats_url: str | None = None
    """None: start an embedded nats-server under data_dir."""
    clickhouse_url: str | None = None
    projections: bool = True
    """Run the projector, as a child process of ``csms serve`` (off: a gateway-only process, e.g.
    when ``csms projections run`` runs elsewhere, or in the gateway throughput benchmark)."""
    heartbeat_interval_s: int = 300
    ping_interval_s: float = 60.0
    """Idle time before the gateway pings a station."""
    ping_timeout_s: float = 30.0
    """A station that does not answer a ping within this time is disconnected."""
    boot_timeout_s: float = 120.0
    """A connection that sends no OCPP message within this time of its upgrade is closed (D2;
    0: never). Any message counts, not only a BootNotification: a booted station reconnects
    without booting again (ADR 0002)."""
    call_timeout_s: float = 30.0
    max_frame_bytes: int = 64 * 1024
    stream_replicas: int = 1
    stream_max_age_s: float = 0.0
    stream_duplicate_window_s: float = 120.0
    """JetStream's duplicate window: a write retried within it is stored once (Nats-Msg-Id)."""
    node_id: str = ""
    """Gateway node name in events; default: host name and pid."""
    presence_beat_s: float = 10.0
    """How often a gateway tells presence it is alive (3 missed beats: its stations show
    offline)."""
    accept_unknown_tokens: bool = True
    """Authorize of an id token missing from the token bucket: Accepted (demo) or Invalid."""
    unknown_stations: str = "accept"
    """``accept`` (demo) or ``reject``: stations missing from the registry (uniform 401)."""
    tls_port: int | None = None
    """wss:// port for security profiles 2 and 3 (needs tls_cert_file/tls_key_file)."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ecdsa_cert_file: Path | None = None
    """A second (EC) server certificate, so that the mandated ECDSA suites work too."""
    tls_ecdsa_key_file: Path | None = None
    tls_ca_file: Path | None = None
    """The CSO CA that signs station certificates (profile 3)."""
    tls_ca_key_file: Path | None = None
    """The key of ``tls_ca_file``: with it the CSMS renews station certificates over OCPP
    (A02: SignCertificate Accepted during ``csms stations renew-certificate``)."""
    tls_client_certificate: str = "optional"
    """``optional`` (profiles 2 and 3 on the TLS port) or ``required`` (profile 3 only)."""
    cso_name: str | None = None
    """Profile 3: the O station certificates must carry (A00.FR.404); unset: not checked."""
    max_pending_handshakes_per_address: int = 50
    workers: int = 1
    """Gateway processes serving the OCPP port(s) together (SO_REUSEPORT: the kernel spreads new
    connections over them), all on one NATS: this process (with the API and the projector) and
    ``workers - 1`` children it starts with these settings, restarts if they die and drains
    with itself. More cores used, and each process has its own open-files limit."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT (set for every process of a ``workers`` group; also for gateway
    processes an operator starts side by side on one port)."""
    api: bool = True
    """Serve the operator API in this process (off in the children of a ``workers`` group)."""


def _coerce(name: str, value: Any) -> Any:
    target = {f.name: f.type for f in fields(Settings)}[name]
    if value is None:
        return None
    if str(target) == "bool":
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if str(target) == "int | None":
        return int(value)
    if "Path" in str(target):
        return Path(value)
    if "int" in str(target) and "None" not in str(target):
        return int(value)
    if "float" in str(target):
        return float(value)
    return str(value)


def load(config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """Merge the sources; unknown keys in the file are an error, not silently ignored."""
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as f:
            data = tomllib.load(f)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown settings in {config_file}: {sorted(unknown)}")
        values.update(data)
    for name in known:
        env = os.environ.get(f"CSMS_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = dataclasses.replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
    if settings.workers < 1:
        raise ValueError(f"workers is at least 1 (got {settings.workers})")
    return settings
