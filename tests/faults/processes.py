"""The processes under test, each a child we can SIGKILL, SIGSTOP/SIGCONT and restart on the same
ports and directories: nats-server (one node, or a 3-node JetStream cluster from generated
config files), ``csms serve`` (gateway only: ``projections = false``) and ``csms projections
run`` (the projector and its embedded chDB engine)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import nats

from streams.embedded import free_port, nats_server_binary


class Child:
    """A child process with its output in a log file."""

    def __init__(self, name: str, log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def _spawn(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            out.flush()
            self.process = await asyncio.create_subprocess_exec(
                *args, stdout=out, stderr=out, env={**os.environ, **(env or {})}
            )
        self.starts += 1

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)

    async def kill9(self) -> None:
        if self.running:
            assert self.process is not None
            self._signal(signal.SIGCONT)  # a stopped process dies on SIGKILL too; be explicit
            self.process.kill()
            await self.process.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    async def stop(self, timeout_s: float = 15.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.resume()
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill9()

    async def wait_log(self, text: str, timeout_s: float, since: int = 0) -> None:
        """Await ``text`` in the log after byte ``since`` (polling the file the child writes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if text.encode() in self.log_file.read_bytes()[since:]:
                    return
            if not self.running:
                raise RuntimeError(f"{self.name} exited; see {self.log_file}")
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name}: no {text!r} within {timeout_s} s; see {self.log_file}")

    def log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0


class NatsNode(Child):
    def __init__(
        self, name: str, root: Path, cluster: list[tuple[str, int]] | None, index: int
    ) -> None:
        super().__init__(name, root / f"{name}.log")
        self.port = free_port()
        self.store = root / name / "store"
        self.conf = root / name / "nats.conf"
        self.cluster_port = cluster[index][1] if cluster else 0
        lines = [
            f'server_name: "{name}"',
            f"listen: 127.0.0.1:{self.port}",
            "jetstream {",
            f'  store_dir: "{self.store}"',
            "}",
        ]
        if cluster:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for _, p in cluster)
            lines += [
                "cluster {",
                '  name: "faults"',
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        since = self.log_size()
        await self._spawn(str(nats_server_binary()), "-c", str(self.conf))
        await self.wait_log("Server is ready", 20, since)


class NatsTopology:
    """One node (R1) or three clustered nodes (R3) on loopback."""

    def __init__(self, root: Path, nodes: int) -> None:
        cluster = [(f"n{i}", free_port()) for i in range(nodes)] if nodes > 1 else None
        self.nodes = [NatsNode(f"nats{i}", root, cluster, i) for i in range(nodes)]
        self.replicas = 3 if nodes >= 3 else 1

    @property
    def seed_url(self) -> str:
        """What the CSMS gets as ``--nats-url`` (one server: ``csms serve`` takes a single URL;
        its NATS clients learn the other nodes from the cluster)."""
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    async def start(self) -> None:
        await asyncio.gather(*(n.start() for n in self.nodes))
        await self.wait_jetstream(30)

    async def wait_jetstream(self, timeout_s: float) -> None:
        """Until JetStream answers on the cluster (a meta leader exists)."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(self.urls, connect_timeout=1, max_reconnect_attempts=0)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except (OSError, TimeoutError, nats.errors.Error) as err:  # not ready yet
                last = err
                await asyncio.sleep(0.2)
        raise TimeoutError(f"JetStream not ready within {timeout_s} s: {last!r}")

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes))


class Serve(Child):
    """``csms serve`` without projections, on fixed ports so that a restart takes them again."""

    def __init__(self, root: Path, nats_url: str, replicas: int) -> None:
        super().__init__("gateway", root / "gateway.log")
        self.ocpp_port, self.api_port = free_port(), free_port()
        self.nats_url = nats_url
        self.data_dir = root / "gateway"
        self.env = {
            "CSMS_PROJECTIONS": "false",
            "CSMS_STREAM_REPLICAS": str(replicas),
            "CSMS_MAX_PENDING_HANDSHAKES_PER_ADDRESS": "100000",
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    async def start(self) -> None:
        since = self.log_size()
        await self._spawn(
            sys.executable, "-m", "csms", "serve", "--host", "127.0.0.1",
            "--ocpp-port", str(self.ocpp_port), "--api-port", str(self.api_port),
            "--data-dir", str(self.data_dir), "--nats-url", self.nats_url,
            env=self.env,
        )  # fmt: skip
        await self.wait_log("OCPP on ws://", 60, since)


class Projector(Child):
    """``csms projections run`` into an embedded chDB directory of its own."""

    def __init__(self, root: Path, nats_url: str) -> None:
        super().__init__("projector", root / "projector.log")
        self.nats_url = nats_url
        self.data_dir = root / "projector"
        self.clickhouse_url = f"chdb://{self.data_dir / 'clickhouse'}"

    async def start(self) -> None:
        since = self.log_size()
        await self._spawn(
            sys.executable, "-m", "csms", "projections", "run", "--nats-url", self.nats_url,
            "--data-dir", str(self.data_dir), "--clickhouse-url", self.clickhouse_url,
            env={"PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        await self.wait_log("csms: projecting", 60, since)
