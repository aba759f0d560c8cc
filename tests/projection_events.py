"""FrameEvents as the gateway writes them, for projection tests: a scripted station."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from csms.domain.events import FrameEvent
from streams import envelope
from streams.projections.projector import fold_batch, write_rows
from streams.store import Store

_ids = itertools.count(1)
T0_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


class ScriptedStation:
    """Builds the events of one station connection; ``received_at_ns`` advances 1 ms a frame."""

    def __init__(self, station_id: str, version: str = "1.6", session_id: str = "s1") -> None:
        self.station_id = station_id
        self.version = version
        self.session_id = session_id
        self.seq = 0
        self.now_ns = T0_NS

    def _event(self, **fields: Any) -> FrameEvent:
        self.seq += 1
        self.now_ns += 1_000_000
        defaults: dict[str, Any] = {
            "event_id": f"node-{self.session_id}-{self.seq}-{next(_ids)}",
            "kind": "frame",
            "station_id": self.station_id,
            "ocpp_version": self.version,
            "direction": "in",
            "message_type": 2,
            "unique_id": None,
            "action": None,
            "raw": "",
            "received_at_ns": self.now_ns,
            "node_id": "node",
            "session_id": self.session_id,
            "seq": self.seq,
        }
        defaults.update(fields)
        return FrameEvent(**defaults)

    def call(
        self, action: str, payload: dict[str, Any], unique_id: str | None = None
    ) -> FrameEvent:
        uid = unique_id or f"u{next(_ids)}"
        raw = msgspec.json.encode([2, uid, action, payload]).decode()
        return self._event(unique_id=uid, action=action, raw=raw)

    def result(self, call: FrameEvent, payload: dict[str, Any]) -> FrameEvent:
        raw = msgspec.json.encode([3, call.unique_id, payload]).decode()
        return self._event(
            direction="out", message_type=3, unique_id=call.unique_id, action=call.action, raw=raw
        )

    def answered(
        self, action: str, payload: dict[str, Any], answer: dict[str, Any]
    ) -> list[FrameEvent]:
        """A CALL and our CALLRESULT: one stream message, as the gateway stores them."""
        call = self.call(action, payload)
        return [call, self.result(call, answer)]

    def connected(self) -> FrameEvent:
        return self._event(kind="connected", message_type=0)

    def disconnected(self, reason: str = "close 1000") -> FrameEvent:
        return self._event(kind="disconnected", message_type=0, reason=reason)


def sampled_16(value: str, **fields: Any) -> dict[str, Any]:
    return {"value": value, **fields}


def meter_value(timestamp: str, *sampled: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": timestamp, "sampledValue": list(sampled)}


async def project_messages(store: Store, messages: list[list[FrameEvent]]) -> None:
    """Fold messages (stream sequences 1..n) and insert the rows, as the projector would."""
    batch = [(seq, "s", envelope.encode_many(evs), 0) for seq, evs in enumerate(messages, 1)]
    await write_rows(store, fold_batch(batch))
