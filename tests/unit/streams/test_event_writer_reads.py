"""The event writer's read side, on a connection fed by hand: PubAcks read in runs by Rust and
everything else by the general parser, whatever way the bytes are split."""

from __future__ import annotations

import pytest

from csms.domain.events import Origin
from streams import event_writer


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.written += chunk

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        raise AssertionError("the connection was dropped")


def _ack(prefix: str, token: int, body: bytes) -> bytes:
    return f"MSG {prefix}.{token} 1 {len(body)}\r\n".encode() + body + b"\r\n"


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 10_000])
async def test_acks_and_other_operations_split_anywhere(chunk: int) -> None:
    writer = event_writer.EventWriter("nats://127.0.0.1:1")
    conn = event_writer._Connection(writer, {}, b"")
    transport = _Transport()
    conn.transport = transport  # type: ignore[assignment]
    writer._conn = conn
    stored: list[tuple[int, int]] = []
    origin = Origin("n", "s", "CP1", "1.6")
    for i in range(4):

        def on_stored(seq: int, i: int = i) -> None:
            stored.append((i, seq))

        writer.submit_exchange(
            origin, 2 * i, f"m{i}", "Heartbeat", b"[2]", 1, 3, b"[3]", 2, on_stored
        )
    assert writer.in_flight == 4
    prefix = writer._prefix
    wire = (
        _ack(prefix, 1, b'{"stream":"E","seq":100}')
        + b"PING\r\n"
        + _ack(prefix, 2, b'{"stream":"E","seq":101,"duplicate":true}')
        + _ack(prefix, 3, b'{"error":{"code":503,"description":"no"}}')
        + _ack(prefix, 4, b'{"stream":"E","seq":103}')
        + _ack(prefix, 1, b'{"stream":"E","seq":100}')  # a second ack of a stored message
    )
    for start in range(0, len(wire), chunk):
        conn.data_received(wire[start : start + chunk])
    conn._flush()  # what the next loop turn would send
    assert stored == [(0, 100), (1, 101), (3, 103)]
    assert writer.in_flight == 1  # message 3 failed: it waits for its retry
    assert writer.failures == 1
    assert transport.written.endswith(b"PONG\r\n")
    await writer.close()
