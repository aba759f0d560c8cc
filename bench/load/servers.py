"""Starting, watching and stopping the servers under test, each a pinned child process.

Every child gets its own log file (stdout and stderr) in the run's scratch directory; a server is
ready when its ready line appears there. ``Launcher.stop_all`` ends every child it started, last
started first (csms before its nats-server), SIGTERM then SIGKILL.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.load.tls import TlsFiles
from streams.embedded import free_port, nats_environment, nats_server_binary

ROOT = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"
SERVER_CPU, SIM_CPU = 0, 1
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class Server:
    """A started server: its URL and the processes whose RSS and CPU are its cost."""

    name: str
    url: str
    children: list[Child]
    api_url: str = ""
    """csms: its operator API (the lag benchmark reads the projections there)."""
    workers: dict[str, int] = field(default_factory=dict)
    """csms ``--workers N``: the gateway processes its first one started (name → pid)."""

    @property
    def pids(self) -> dict[str, int]:
        return {**{c.name: c.process.pid for c in self.children}, **self.workers}


def pinned(argv: list[str], cpu: int, realtime: bool) -> list[str]:
    """``argv`` pinned to ``cpu`` with taskset, and SCHED_FIFO priority 1 if ``realtime``."""
    return [*(["chrt", "-f", "1"] if realtime else []), "taskset", "-c", str(cpu), *argv]


def _nofile(limit: int) -> Callable[[], None]:
    def raise_limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))

    return raise_limit


def child_pids(pid: int) -> list[int]:
    """The children of ``pid`` in the order they were started."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return sorted(int(word) for word in f.read().split())


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Launcher:
    scratch: Path
    realtime: bool
    nofile: int
    tls: TlsFiles | None = None
    """Serve wss:// with these files (the servers' URLs are then wss://)."""
    projections: bool = False
    """csms with its projector (a child process of ``csms serve``, into chDB under the scratch
    directory): the end-to-end lag benchmark (bench/load/lag.py). Off for the gateway benches."""
    nats_cpu: int = SERVER_CPU
    """Where csms's nats-server runs: with the gateway (default: our whole system's cost on
    one core) or, with ``SIM_CPU``, beside the simulator (the gateway alone on its core, as
    when NATS runs on machines of its own)."""
    children: list[Child] = field(default_factory=list)

    def launch(
        self,
        name: str,
        argv: list[str],
        ready: str,
        cpu: int = SERVER_CPU,
        env: dict[str, str] | None = None,
    ) -> Child:
        log = self.scratch / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                pinned(argv, cpu, self.realtime),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_nofile(self.nofile),
                cwd=ROOT,
                env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
            )
        child = Child(name, process, log)
        self.children.append(child)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{child.tail()}")
            time.sleep(0.05)
        return child

    def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            if child.process.poll() is None:
                child.process.terminate()
                try:
                    child.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait(STOP_TIMEOUT_S)

    # -- the three servers -----------------------------------------------------------
    def csms(self, workers: int = 1) -> Server:
        """csms on its own nats-server; ``workers`` gateway processes (``csms serve
        --workers``), whose pids are read from the first one's children."""
        if workers > 1 and self.projections:
            raise ValueError("workers are measured without the projector (its pid would mix in)")
        store = self.scratch / "nats"
        nats_port = free_port(HOST)
        nats = self.launch(
            "nats-server",
            [str(nats_server_binary()), "-js", "-sd", str(store), "-a", HOST, "-p", str(nats_port)],
            "Server is ready",
            self.nats_cpu,
            nats_environment(),  # the embedded server's Go runtime settings
        )
        port = free_port(HOST)
        argv = [sys.executable, "-m", "csms", "serve", "--host", HOST, "--ocpp-port", str(port)]
        api_port = free_port(HOST)
        argv += ["--api-port", str(api_port), "--data-dir", str(self.scratch / "csms")]
        argv += ["--nats-url", f"nats://{HOST}:{nats_port}"]
        # The gateway under test alone: the projector has its own benchmark (bench/projections);
        # every simulated station connects from 127.0.0.1, so the per-address cap of pending
        # handshakes (a defence against one abusive address) is lifted here.
        config = self.scratch / "csms.toml"
        text = f"projections = {'true' if self.projections else 'false'}\n"
        text += "max_pending_handshakes_per_address = 100000\n"
        text += f"workers = {workers}\n"
        url = f"ws://{HOST}:{port}/ocpp"
        if self.tls is not None:
            tls_port = free_port(HOST)
            text += f"tls_port = {tls_port}\n"
            text += (
                f'tls_cert_file = "{self.tls.cert_file}"\ntls_key_file = "{self.tls.key_file}"\n'
            )
            url = f"wss://{HOST}:{tls_port}/ocpp"
        config.write_text(text)
        argv += ["--config", str(config)]
        csms = self.launch("csms", argv, "csms: OCPP on ws://")
        pids = child_pids(csms.process.pid)  # the projector is off with workers (see above)
        group = {f"csms-w{i}": pid for i, pid in enumerate(pids[: workers - 1], 1)}
        return Server("csms", url, [csms, nats], f"http://{HOST}:{api_port}", group)

    def python_server(self, name: str, module: str) -> Server:
        port = free_port(HOST)
        argv = [sys.executable, "-m", module, "--host", HOST, "--port", str(port)]
        scheme = "ws"
        if self.tls is not None:
            argv += ["--cert", str(self.tls.cert_file), "--key", str(self.tls.key_file)]
            scheme = "wss"
        child = self.launch(name, argv, f"OCPP on {scheme}://")
        return Server(name, f"{scheme}://{HOST}:{port}/ocpp", [child])

    def start(self, name: str) -> Server:
        if name == "csms":
            return self.csms()
        modules = {"reference": "bench.load.reference_ocpp", "echo": "bench.load.echo_server"}
        return self.python_server(name, modules[name])
