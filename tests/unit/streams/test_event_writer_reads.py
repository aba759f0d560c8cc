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


async def test_reply_tokens_are_reused_only_after_the_ack_of_a_single_attempt() -> None:
    """A token answered after one send is free again (nats-server's subject caches hit); a
    token whose message was sent twice can still see the second PubAck, so it is retired: that
    late ack must not be read as the ack of a newer message (write-ahead)."""
    writer = event_writer.EventWriter("nats://127.0.0.1:1")
    conn = event_writer._Connection(writer, {}, b"")
    conn.transport = _Transport()  # type: ignore[assignment]
    writer._conn = conn
    origin = Origin("n", "s", "CP1", "1.6")
    stored: list[str] = []

    def submit(name: str) -> int:
        writer.submit_exchange(
            origin, 0, name, "Heartbeat", b"[2]", 1, 3, b"[3]", 2, lambda _: stored.append(name)
        )
        return list(writer._entries)[-1]

    def ack(token: int, seq: int) -> None:
        conn.data_received(_ack(writer._prefix, token, b'{"stream":"E","seq":%d}' % seq))

    first = submit("a")
    ack(first, 1)
    assert submit("b") == first  # freed by its single attempt's ack: reused
    writer._failed(first, writer._entries[first], "no PubAck in time")  # b times out ...
    writer._send(first, writer._entries[first])  # ... and is sent again
    ack(first, 2)  # the first attempt's ack: b is stored
    assert stored == ["a", "b"]
    c = submit("c")
    assert c != first  # b's second attempt may still be acknowledged on its token
    ack(first, 2)  # that duplicate ack arrives late: it is not c's
    assert stored == ["a", "b"]
    assert writer.in_flight == 1
    ack(c, 3)
    assert stored == ["a", "b", "c"]
