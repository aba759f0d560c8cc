"""The frames and the contenders of the micro benchmark.

Every contender is a loop ``loop(n)`` that performs its operation ``n`` times on one frame, built
once per frame (codecs, validators and bound methods are looked up outside the loop) and checked
once to produce a valid result, so that a broken path cannot look fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import cast

import msgspec
from ocpp import messages as ocpp_messages

from csms.protocol import Call, codec_for

FRAMES_DIR = Path(__file__).resolve().parents[1] / "frames"
BATCH = 256
"""Frames per ``Codec.decode_batch`` call (and per iteration of the Rust batch bench)."""

_VERSION_OF_PREFIX = {"v16_": "1.6", "v201_": "2.0.1"}

Loop = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Frame:
    """One OCPP-J frame from ``bench/frames``; ``name`` is the file stem (the criterion group)."""

    name: str
    version: str
    action: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way of turning a frame into something a handler can use."""

    key: str
    """Stable id, used in the JSON results."""
    label: str
    """Table row (Markdown)."""
    loop: Loop
    frames_per_call: int = 1
    slow: bool = False
    """Slow contenders get a longer time budget per round."""


def load_frames(directory: Path = FRAMES_DIR) -> list[Frame]:
    """The frames, sorted by name; trailing whitespace is dropped, as the Rust bench does."""
    frames = []
    for path in sorted(directory.glob("*.json")):
        version = next((v for p, v in _VERSION_OF_PREFIX.items() if path.name.startswith(p)), None)
        if version is None:
            raise ValueError(f"{path}: the name must start with one of {list(_VERSION_OF_PREFIX)}")
        data = path.read_bytes().rstrip()
        frames.append(Frame(path.stem, version, str(msgspec.json.decode(data)[2]), data))
    return frames


def _ours(frame: Frame) -> Loop:
    decode, data = codec_for(frame.version).decode, frame.data
    if not isinstance(decode(data), Call):
        raise AssertionError(f"{frame.name}: Codec.decode did not return a Call")

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            decode(data)

    return loop


def _ours_payload(frame: Frame) -> Loop:
    # Every frame here is a CALL (checked in ``_ours``), hence the narrower type of ``decode``.
    decode, data = cast(Callable[[bytes], Call], codec_for(frame.version).decode), frame.data
    if decode(data).payload != msgspec.json.decode(data)[3]:
        raise AssertionError(f"{frame.name}: Call.payload differs from the frame's payload")

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            decode(data).payload  # noqa: B018  (the attribute access builds the dict)

    return loop


def _ours_batch(frame: Frame) -> Loop:
    decode_batch, frames = codec_for(frame.version).decode_batch, [frame.data] * BATCH
    if not all(isinstance(result, Call) for result in decode_batch(frames)):
        raise AssertionError(f"{frame.name}: Codec.decode_batch refused a frame")

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            decode_batch(frames)

    return loop


def _ocpp(frame: Frame) -> Loop:
    # What ocpp's ChargePoint does per incoming text frame: unpack (json.loads), then validate
    # the payload against the cached Draft4Validator of the action's schema.
    unpack, validate = ocpp_messages.unpack, ocpp_messages._validate_payload
    text, version = frame.data.decode("utf-8"), frame.version
    call = unpack(text)
    if not isinstance(call, ocpp_messages.Call):
        raise AssertionError(f"{frame.name}: ocpp.messages.unpack did not return a Call")
    validate(call, version)

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            validate(unpack(text), version)

    return loop


def _msgspec(frame: Frame) -> Loop:
    decode, data = msgspec.json.decode, frame.data
    if not isinstance(decode(data), list):
        raise AssertionError(f"{frame.name}: msgspec did not decode a JSON array")

    def loop(n: int) -> None:
        for _ in repeat(None, n):
            decode(data)

    return loop


def candidates(frame: Frame) -> list[Candidate]:
    """The contenders for ``frame``, each already checked on it."""
    return [
        Candidate("ours", "ours: `Codec.decode` → `Call` (payload lazy)", _ours(frame)),
        Candidate("ours_payload", "ours: `Codec.decode` + `.payload` (dict)", _ours_payload(frame)),
        Candidate(
            "ours_batch",
            f"ours: `Codec.decode_batch`, {BATCH} frames per call",
            _ours_batch(frame),
            frames_per_call=BATCH,
        ),
        Candidate(
            "ocpp",
            "ocpp package: `unpack` + `_validate_payload` (jsonschema)",
            _ocpp(frame),
            slow=True,
        ),
        Candidate("msgspec", "msgspec: `json.decode`, parse only, no validation", _msgspec(frame)),
    ]
