"""Fuzzing through the live WebSocket: mutated OCPP frames sent to a real ``csms`` gateway, one at a
time, each followed by a Heartbeat probe. Seeded and reproducible.

The seeds are the conformance corpus's valid requests of station-initiated actions (as CALLs of
their version) and the malformed-input table (tests/fixtures/frames/malformed.json). Mutations:
byte flips, token insertions, truncation, splicing, duplication.

A finding is any of: a reply that is not a well-formed CALLRESULT/CALLERROR (RPC error code of
the version, details ``{}``); a reply to a fuzz frame that is a response or a SEND; a close with a
code other than 1003/1007/1008/1009 (the documented closes of reliability.md §5.3: binary, bad
UTF-8, the strike budget, too big); the probe not answered within 10 s; or, at the end, a new
station not answered. A closed connection is reopened and the run goes on.

``python -m tests.fuzz_wire --seconds 600`` starts its own nats-server and CSMS (embedded, under a
temporary directory) and prints the counts; ``tests/integration/test_fuzz_wire.py`` runs a few
hundred frames in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from csms import app
from csms.handlers.routing import ROUTES
from csms.settings import Settings
from streams.embedded import EmbeddedNats, free_port
from tests.integration.station import Station

FIXTURES = Path(__file__).parent / "fixtures"
TOKENS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
DIRS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
CLOSES = {1003, 1007, 1008, 1009}
RPC_ERRORS = {
    "FormatViolation", "FormationViolation", "GenericError", "InternalError",
    "MessageTypeNotSupported", "NotImplemented", "NotSupported", "OccurenceConstraintViolation",
    "OccurrenceConstraintViolation", "PropertyConstraintViolation", "ProtocolError",
    "RpcFrameworkError", "SecurityError", "TypeConstraintViolation",
}  # fmt: skip
PIECES = [b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"\\u0000", b"\\ud800", b"null",
          b"true", b"-0", b"1e999", b"18446744073709551616", b"0.1", b"2", b"3", b"4", b"6",
          b'"a1"', b"\xff", b"\xc3\x28", b" " * 64, b"[" * 200]  # fmt: skip


def seeds(version: str) -> list[bytes]:
    """Valid CALLs of the station-initiated actions of ``version``, and the malformed table."""
    found: list[bytes] = []
    for (route_version, action), _ in sorted(ROUTES.items()):
        if route_version != version:
            continue
        for path in sorted(
            (FIXTURES / "ocpp" / DIRS[version] / action / "valid").glob("*request*")
        ):
            payload = json.loads(path.read_text())
            found.append(json.dumps([2, f"s{len(found)}", action, payload]).encode())
    for row in json.loads((FIXTURES / "frames" / "malformed.json").read_text()):
        frame = row.get("frame")
        text = frame.get(version) if isinstance(frame, dict) else frame
        if isinstance(text, str):
            found.append(text.encode())
    return found


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = rng.choice(PIECES)
        elif kind == 2:
            del data[at:]
        elif kind == 3:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data[at:] = other[cut:]
        else:
            data[at:at] = data[: rng.randrange(len(data) + 1)]
    return bytes(data[: 64 * 1024 + 16])


def well_formed(reply: Any) -> bool:
    if not isinstance(reply, list) or not reply:
        return False
    if reply[0] == 3:
        return len(reply) == 3 and isinstance(reply[1], str) and isinstance(reply[2], dict)
    if reply[0] == 4:
        return (
            len(reply) == 5
            and isinstance(reply[1], str)
            and reply[2] in RPC_ERRORS
            and isinstance(reply[3], str)
            and reply[4] == {}
        )
    return False


@dataclasses.dataclass
class Report:
    frames: int = 0
    replies: Counter[str] = dataclasses.field(default_factory=Counter)
    closes: Counter[int] = dataclasses.field(default_factory=Counter)
    findings: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        return (
            f"fuzz_wire: {self.frames} frames, replies {dict(self.replies)}, closes "
            f"{dict(self.closes)}, {len(self.findings)} findings"
        )


async def _one(station: Station, frame: bytes, n: int, report: Report) -> bool:
    """Send one fuzz frame and a probe; False when the connection closed (reopen)."""
    probe = f"probe-{n}"
    station.send_text(frame)
    station.send_text(json.dumps([2, probe, "Heartbeat", {}]))
    deadline = time.monotonic() + 10
    closed = asyncio.ensure_future(station.listener.closed.wait())
    try:
        while True:
            frames = station.listener.frames
            if frames.empty():
                get = asyncio.ensure_future(frames.get())
                timeout = max(0.0, deadline - time.monotonic())
                done, _ = await asyncio.wait(
                    {get, closed}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if get not in done:
                    get.cancel()
                    return _ended(station, frame, report, closed in done)
                text = get.result()
            else:
                text = frames.get_nowait()
            if not _check(text, probe, frame, report):
                return True
    finally:
        closed.cancel()


def _ended(station: Station, frame: bytes, report: Report, closed: bool) -> bool:
    if not closed:
        report.findings.append(f"probe unanswered after {frame[:200]!r}")
        return False
    received = station.transport.close_handshake.recv
    code = int(received.code.value) if received is not None else 0
    report.closes[code] += 1
    if code not in CLOSES:
        report.findings.append(f"close {code} after {frame[:200]!r}")
    return False


def _check(text: str | bytes, probe: str, frame: bytes, report: Report) -> bool:
    """Judge one received frame; False once it is the probe's answer."""
    reply = json.loads(text)
    if isinstance(reply, list) and reply[1:2] == [probe]:
        return False
    report.replies[str(reply[0] if isinstance(reply, list) and reply else "?")] += 1
    if not well_formed(reply):
        report.findings.append(f"bad reply {text[:200]!r} to {frame[:200]!r}")
    return True


async def fuzz(running: app.Running, seconds: float, seed: int, max_frames: int = 0) -> Report:
    rng = random.Random(seed)
    report = Report()
    corpora = {v: seeds(v) for v in TOKENS}
    url = f"ws://127.0.0.1:{running.gateway.port}/ocpp/"
    stop = time.monotonic() + seconds
    station: Station | None = None
    version = "1.6"
    while time.monotonic() < stop and (not max_frames or report.frames < max_frames):
        if station is None:
            version = rng.choice(list(TOKENS))
            station = await Station.connect(f"{url}FUZZ-{report.frames}", TOKENS[version])
        frame = mutate(rng, corpora[version])
        report.frames += 1
        if not await _one(station, frame, report.frames, report):
            station.transport.disconnect()
            station = None
    check = await Station.connect(f"{url}FUZZ-AFTER", "ocpp2.0.1")
    if (await check.call("Heartbeat", {}))[0] != 3:
        report.findings.append("a new station is not answered after the run")
    await check.close()
    return report


async def _main(seconds: float, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        nats = EmbeddedNats(Path(tmp) / "nats")
        await nats.start()
        settings = Settings(
            host="127.0.0.1", ocpp_port=0, api_port=free_port(),
            data_dir=Path(tmp), nats_url=nats.url, projections=False, node_id="fuzz",
        )  # fmt: skip
        running = await app.start(settings)
        try:
            report = await fuzz(running, seconds, seed)
        finally:
            await running.stop()
            await nats.stop()
    print(report.line() + f", seed {seed}, {seconds:.0f} s")
    for finding in report.findings[:20]:
        print("  " + finding)
    return 1 if report.findings else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_wire", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return asyncio.run(_main(args.seconds, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
