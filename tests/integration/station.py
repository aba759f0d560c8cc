"""A minimal OCPP station over picows for tests: sends frames, reads answers, answers CALLs."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import picows
from picows import WSFrame, WSListener, WSMsgType, WSTransport


class _Listener(WSListener):
    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.put_nowait(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()


class Station:
    def __init__(self, transport: WSTransport, listener: _Listener, subprotocol: str) -> None:
        self.transport = transport
        self.listener = listener
        self.subprotocol = subprotocol
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, url: str, subprotocols: str) -> Station:
        transport, listener = await picows.ws_connect(
            _Listener, url, extra_headers={"Sec-WebSocket-Protocol": subprotocols}
        )
        chosen = transport.response.headers.get("Sec-WebSocket-Protocol", "")
        assert isinstance(listener, _Listener)
        return cls(transport, listener, chosen)

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.transport.send(WSMsgType.TEXT, data)

    async def receive(self, timeout_s: float = 10.0) -> list[Any]:
        data = await asyncio.wait_for(self.listener.frames.get(), timeout_s)
        frame: list[Any] = json.loads(data)
        return frame

    async def call(
        self, action: str, payload: dict[str, Any], unique_id: str | None = None
    ) -> list[Any]:
        """Send a CALL and return the frame that answers it."""
        unique_id = unique_id or f"m{next(self._ids)}"
        self.send_text(json.dumps([2, unique_id, action, payload]))
        answer = await self.receive()
        assert answer[1] == unique_id, answer
        return answer

    async def close(self) -> None:
        self.transport.send_close(picows.WSCloseCode.OK)
        self.transport.disconnect()
        await asyncio.wait_for(self.listener.closed.wait(), 5)
