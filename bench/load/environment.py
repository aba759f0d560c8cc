"""Machine and versions, as every report here must state them."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from bench.load.host_memory import free_page_reporting
from csms.protocol import core_version
from streams.embedded import nats_environment, nats_server_binary


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _nats_server() -> str:
    done = subprocess.run(
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip().removeprefix("nats-server: ") or "?"


def _rustc() -> str:
    """The Rust compiler on this machine (the one `make install` builds csms._core with)."""
    try:
        done = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return done.stdout.strip().removeprefix("rustc ") or "?"


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def environment(realtime: bool) -> dict[str, str]:
    packages = ("picows", "uvloop", "websockets", "ocpp", "jsonschema", "nats-py", "msgspec")
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "csms._core": core_version,
        "rust": _rustc(),
        **{name: version(name) for name in packages},
        "nats-server": _nats_server(),
        "nats-server Go runtime": " ".join(
            f"{k}={v}" for k, v in nats_environment().items() if k in ("GOGC", "GOMEMLIMIT")
        ),
        "free page reporting to the host": free_page_reporting(),
        "scheduling": "SCHED_FIFO 1 (chrt -f 1)" if realtime else "SCHED_OTHER (normal)",
        "load_average_start": load_average(),
    }
