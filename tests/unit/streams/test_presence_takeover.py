"""streams.presence.opened_later_elsewhere: which of two sessions of a station is the stale one."""

from __future__ import annotations

from streams.presence import StationPresence, opened_later_elsewhere


def entry(node_id: str, connected_at: str, connected: bool = True) -> StationPresence:
    return StationPresence(
        station_id="CP1",
        node_id=node_id,
        ocpp_version="1.6",
        connected=connected,
        connected_at=connected_at,
        last_seen=connected_at,
        session_id=f"{node_id}-{connected_at}",
    )


EARLY, LATE = "2026-11-22T10:00:00.000Z", "2026-11-22T10:00:05.000Z"


def test_a_later_session_on_another_node_keeps_the_entry() -> None:
    assert opened_later_elsewhere(entry("b", LATE), entry("a", EARLY))


def test_an_earlier_session_elsewhere_is_replaced() -> None:
    assert not opened_later_elsewhere(entry("b", EARLY), entry("a", LATE))


def test_on_the_same_node_the_write_order_decides() -> None:
    assert not opened_later_elsewhere(entry("a", LATE), entry("a", EARLY))


def test_a_closed_entry_never_keeps_it() -> None:
    assert not opened_later_elsewhere(entry("b", LATE, connected=False), entry("a", EARLY))
