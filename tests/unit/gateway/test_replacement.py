"""Gateway.replaced_elsewhere: a notice from another node closes only the session it names."""

from __future__ import annotations

from typing import Any, cast

import picows
import pytest

from csms.gateway.limits import REPLACEMENTS_BEFORE_REFUSAL
from csms.gateway.server import Gateway, GatewayConfig
from csms.gateway.session import SessionConfig, StationSession


class FakeSession:
    """What ``replaced_elsewhere`` uses of a session: its id and ``close``."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.closes: list[tuple[picows.WSCloseCode, str]] = []

    def close(self, code: picows.WSCloseCode, reason: str = "") -> None:
        self.closes.append((code, reason))


def gateway_holding(**sessions: FakeSession) -> Gateway:
    gateway = Gateway({}, cast(Any, None), cast(Any, None), SessionConfig("here"), GatewayConfig())
    gateway.sessions.update({k: cast(StationSession, v) for k, v in sessions.items()})
    return gateway


def test_the_named_session_is_closed_with_1008(caplog: pytest.LogCaptureFixture) -> None:
    held = FakeSession("old")
    gateway = gateway_holding(CP1=held)
    assert gateway.replaced_elsewhere("CP1", "old", "gw-b") is True
    assert held.closes == [
        (picows.WSCloseCode.POLICY_VIOLATION, "replaced by a newer connection on gw-b")
    ]
    assert any(r.levelname == "WARNING" and "gw-b" in r.getMessage() for r in caplog.records)


def test_a_newer_local_session_is_left_open() -> None:
    newer = FakeSession("new")  # the station came back here before the notice arrived
    gateway = gateway_holding(CP1=newer)
    assert gateway.replaced_elsewhere("CP1", "old", "gw-b") is False
    assert newer.closes == []


def test_a_session_already_gone_or_another_station_is_nothing_to_do() -> None:
    other = FakeSession("old")
    gateway = gateway_holding(CP2=other)
    assert gateway.replaced_elsewhere("CP1", "old", "gw-b") is False
    assert other.closes == []


def test_the_close_reason_fits_a_close_frame() -> None:
    held = FakeSession("old")
    gateway = gateway_holding(CP1=held)
    node = "ñ" * 100  # 200 bytes of UTF-8
    assert gateway.replaced_elsewhere("CP1", "old", node)
    [(_, reason)] = held.closes
    assert len(reason.encode()) <= 123
    assert reason.startswith("replaced by a newer connection on ñ")


def test_replacements_across_nodes_count_toward_d11_on_both_nodes() -> None:
    """A station bouncing between two nodes: the node whose session a notice closed counts
    it (``replaced_elsewhere``), and so does the node that took the station over (told by its
    presence writer: ``replacement_seen``); from the 10th within 60 s each node refuses a
    connection that would replace the session it holds."""
    displaced = gateway_holding()
    taker = gateway_holding()
    for n in range(REPLACEMENTS_BEFORE_REFUSAL):
        assert not displaced._replacements.refusing("CP1")
        assert not taker._replacements.refusing("CP1")
        displaced.sessions["CP1"] = cast(StationSession, FakeSession(f"s{n}"))
        assert displaced.replaced_elsewhere("CP1", f"s{n}", "gw-b")
        taker.replacement_seen("CP1")
    assert displaced._replacements.refusing("CP1")
    assert taker._replacements.refusing("CP1")
    assert not displaced._replacements.refusing("CP2")


def test_a_notice_that_closes_nothing_is_not_counted() -> None:
    gateway = gateway_holding(CP1=FakeSession("new"))
    for _ in range(REPLACEMENTS_BEFORE_REFUSAL):
        assert gateway.replaced_elsewhere("CP1", "old", "gw-b") is False
    assert not gateway._replacements.refusing("CP1")
