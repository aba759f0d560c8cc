"""``Codec.acknowledge``, the gateway's one-call answer to CALLs whose answer is always the
empty payload, agrees with the general way (``decode``, the route's handler,
``encode_call_result``) on every frame it takes, and leaves everything else to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.flags import CHECKED_ACTIONS
from csms.handlers.routing import ACKNOWLEDGED, ROUTES
from csms.protocol import SUPPORTED_VERSIONS, Call, OcppError, codec_for, may_hold_negative

CORPUS = Path(__file__).parents[2] / "fixtures" / "ocpp"
FOLDER = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


def _frames(version: str) -> list[bytes]:
    """A CALL of every station-initiated action's request fixtures, valid and invalid."""
    out = []
    for action in sorted(codec_for(version).actions("station")):
        for file in sorted((CORPUS / FOLDER[version] / action).glob("*/*request*.json")):
            payload = json.loads(file.read_text())
            out.append(json.dumps([2, f"m-{file.stem}", action, payload]).encode())
    return out


def _general(version: str, frame: bytes) -> tuple[str, str, bytes] | None:
    """What the general path answers, for a frame ``acknowledge`` may take."""
    codec = codec_for(version)
    try:
        call = codec.decode(frame)
    except OcppError:
        return None
    if type(call) is not Call or call.message_type_id != 2:
        return None
    handler = ROUTES.get((version, call.action))
    if handler is None or call.action not in ACKNOWLEDGED[version]:
        return None
    answer = handler(None, call)  # type: ignore[arg-type]  # reads no context for these frames
    assert answer == {}
    return call.unique_id, call.action, codec.encode_call_result(call.action, call.unique_id, {})


def _check(version: str, frame: bytes) -> tuple[str, str, bytes] | None:
    quick = codec_for(version).acknowledge(frame, ACKNOWLEDGED[version], CHECKED_ACTIONS)
    if quick is not None:
        assert quick == _general(version, frame)
        assert not (quick[1] in CHECKED_ACTIONS and may_hold_negative(frame))
    return quick


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_agrees_with_the_general_path_on_the_corpus(version: str) -> None:
    taken = {q[1] for f in _frames(version) if (q := _check(version, f)) is not None}
    # every acknowledged action has a valid fixture without a negative value, so each is taken
    assert taken == set(ACKNOWLEDGED[version])


def test_acknowledged_actions_are_those_answered_empty() -> None:
    assert ACKNOWLEDGED["1.6"]["MeterValues"] is None
    assert ACKNOWLEDGED["2.0.1"]["StatusNotification"] is None
    assert not {"Heartbeat", "BootNotification", "StartTransaction"} & set(ACKNOWLEDGED["1.6"])
    assert ACKNOWLEDGED["2.1"]["TransactionEvent"] == b'"idToken"'
    assert "NotifyPeriodicEventStream" not in ACKNOWLEDGED["2.1"]  # SEND: never answered


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_a_transaction_event_with_an_id_token_goes_to_its_handler(version: str) -> None:
    codec = codec_for(version)
    event = {
        "eventType": "Updated",
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "t1"},
    }
    plain = json.dumps([2, "a", "TransactionEvent", event]).encode()
    assert codec.acknowledge(plain, ACKNOWLEDGED[version], CHECKED_ACTIONS) is not None
    token = {**event, "idToken": {"idToken": "TAG", "type": "ISO14443"}}
    authorized = json.dumps([2, "a", "TransactionEvent", token]).encode()
    assert codec.acknowledge(authorized, ACKNOWLEDGED[version], CHECKED_ACTIONS) is None


def test_leaves_negatives_errors_and_other_shapes_to_the_general_path() -> None:
    codec = codec_for("1.6")
    acks = ACKNOWLEDGED["1.6"]
    reading = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z"}]}
    reading["meterValue"][0]["sampledValue"] = [{"value": "-5"}]  # type: ignore[index]
    negative = json.dumps([2, "a", "MeterValues", reading]).encode()
    assert codec.acknowledge(negative, acks, CHECKED_ACTIONS) is None
    assert codec.acknowledge(negative, acks, frozenset()) is not None
    for frame in (
        b'[2,"a","MeterValues",{}]',  # schema violation: the general path answers it
        b'[3,"a",{}]',
        b'[2,"a","Heartbeat",{}]',  # not acknowledged: its handler answers
        b'[2,"a","MeterValues",{"connectorId":1,"meterValue":[]}',  # cut short
        b'[2,"a\\u0041","StatusNotification",{}]',
        b"[" * 100,
    ):
        assert codec.acknowledge(frame, acks, CHECKED_ACTIONS) is None, frame
    big = json.dumps([2, "a", "StatusNotification", {"x": "y" * 70_000}]).encode()
    assert codec.acknowledge(big, acks, CHECKED_ACTIONS) is None


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from(SUPPORTED_VERSIONS),
    data=st.data(),
)
def test_a_mutated_frame_is_taken_only_when_the_general_path_agrees(
    version: str, data: st.DataObject
) -> None:
    frames = _frames(version)
    frame = bytearray(data.draw(st.sampled_from(frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] = data.draw(st.sampled_from(b'{}[]",:-0123456789aZ\\ '))
    _check(version, bytes(frame))
