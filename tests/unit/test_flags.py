"""csms.domain.flags: which payloads are flagged (M30), and that the byte pre-check never
misses a negative number the full check would flag."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.flags import CHECKED_ACTIONS, meter_flag
from csms.protocol import may_hold_negative


def sampled(value: Any, measurand: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"value": value}
    if measurand is not None:
        item["measurand"] = measurand
    return {"meterValue": [{"timestamp": "2026-11-21T10:00:00Z", "sampledValue": [item]}]}


@pytest.mark.parametrize(
    ("action", "payload", "flagged"),
    [
        ("MeterValues", sampled("-1"), True),  # absent measurand: the energy register
        ("MeterValues", sampled("-0.5", "Energy.Active.Export.Register"), True),
        ("MeterValues", sampled("-0", "Energy.Active.Import.Register"), False),
        ("MeterValues", sampled("-5", "Power.Active.Import"), False),
        ("MeterValues", sampled("-5", "Current.Import"), False),
        ("MeterValues", sampled("abc"), False),
        ("MeterValues", sampled("-abc"), False),
        ("MeterValues", sampled("12"), False),
        ("TransactionEvent", sampled(-12.0, "Energy.Active.Import.Register"), True),
        ("TransactionEvent", sampled(12), False),
        ("StartTransaction", {"meterStart": -1}, True),
        ("StopTransaction", {"meterStop": -2}, True),
        ("StopTransaction", {"meterStop": 2, "transactionData": sampled("-3")["meterValue"]}, True),
        ("StopTransaction", {"meterStop": 2}, False),
        ("MeterValues", {"meterValue": "not a list"}, False),
        ("MeterValues", {"meterValue": [{"sampledValue": [1, None]}]}, False),
        ("Heartbeat", {"meterStart": -1}, False),
    ],
)
def test_meter_flag(action: str, payload: dict[str, Any], flagged: bool) -> None:
    assert (meter_flag(action, payload) is not None) is flagged


def test_the_checked_actions() -> None:
    assert {"MeterValues", "TransactionEvent", "StartTransaction", "StopTransaction"} == set(
        CHECKED_ACTIONS
    )


@pytest.mark.parametrize(
    ("frame", "negative"),
    [
        (b'[2,"6f1c-4a2b","MeterValues",{"t":"2026-11-22T04:00:00Z","v":"12.5"}]', False),
        (b'[2,"a","X",{"tag":"AB-CD","x":1e-5}]', False),
        (b'[2,"a","MeterValues",{"v":"-12.5"}]', True),
        (b'[2,"a","MeterValues",{"v":\n\t -1}]', True),
        (b'[2,"a","MeterValues",{"v":[0,-1]}]', True),
        (b"", False),
    ],
)
def test_the_byte_check(frame: bytes, negative: bool) -> None:
    assert may_hold_negative(frame) is negative


@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    ),
    action=st.sampled_from(sorted(CHECKED_ACTIONS)),
)
def test_the_byte_check_never_hides_a_flag(value: Any, action: str) -> None:
    payload = {**sampled(value), "meterStart": value, "meterStop": value}
    payload["transactionData"] = payload["meterValue"]
    raw = json.dumps([2, "id", action, payload], separators=(",", ":")).encode()
    if meter_flag(action, payload) is not None:
        assert may_hold_negative(raw)
    spaced = json.dumps([2, "id", action, payload]).encode()  # ": -1" with a space
    if meter_flag(action, payload) is not None:
        assert may_hold_negative(spaced)
