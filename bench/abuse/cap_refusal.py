"""What a refusal at the pending-handshake cap leaves behind (found by ``bench.abuse`` D1/D11):

    .venv/bin/python -m bench.abuse.cap_refusal [--refused 10] [--after 16]

Starts ``csms serve`` as ``bench.abuse`` does, opens 50 idle connections from 127.0.0.3 (the
default cap of pending handshakes per address) plus ``--refused`` more (each dropped by the
gateway at once), then sends ``--after`` upgrade requests from 127.0.0.1 at once. Prints one JSON
line; exit status 1 if any of them hung (the request left unread until the gateway's 5 s
handshake timeout) or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.abuse.__main__ import ATTACKER, start_server
from bench.abuse.legit import after_attack
from bench.load.report import clean_scratch
from bench.load.servers import HOST, Launcher
from bench.load.tls import make_server_certificate

CAP = 50
"""``max_pending_handshakes_per_address``'s default."""


async def probe(port: int, refused: int, after: int) -> dict[str, int]:
    held = [
        (await asyncio.open_connection(HOST, port, local_addr=(ATTACKER, 0)))[1]
        for _ in range(CAP + refused)
    ]
    await asyncio.sleep(0.3)  # the gateway has accepted (and dropped) them all
    try:
        return await after_attack(HOST, port, HOST, after)
    finally:
        for writer in held:
            writer.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse.cap_refusal", description=__doc__)
    parser.add_argument("--refused", type=int, default=10)
    parser.add_argument("--after", type=int, default=16)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-cap-refusal-"))
    launcher = Launcher(scratch, False, 4096)
    try:
        ports, _ = start_server(launcher, make_server_certificate(scratch / "tls"))
        found = asyncio.run(probe(ports.ws, args.refused, args.after))
    finally:
        launcher.stop_all()
    ok = found.get("upgraded", 0) == args.after
    print(json.dumps({"refused": args.refused, "after": found}))
    clean_scratch(scratch, not ok)  # the csms log stays when something hung
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
