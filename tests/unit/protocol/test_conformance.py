"""The conformance corpus (``tests/fixtures/``) walked through the Python API of the core.

The same files are walked by the Rust integration test ``core_rs/tests/conformance.rs``; here they
go through what the gateway actually calls:

* a request payload is framed as a CALL (a SEND for 2.1's SEND message) and decoded, by the
  CSMS-role codec when the station sends that action and by a station-role codec when the CSMS
  does; a response payload goes through ``encode_call_result``, which checks it against the
  action's response schema;
* a valid payload must decode (and round-trip unchanged), an invalid one must be refused with the
  code its file name starts with (``<CODE>--...json``), spelled for its version;
* every row of ``frames/malformed.json`` is decoded by the CSMS-role codec of each version it
  lists.

See ``tests/fixtures/README.md`` for the layout and naming.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from csms.protocol import (
    Call,
    CallError,
    CallResult,
    Codec,
    Ignored,
    OcppError,
    codec_for,
    schema_dir,
)
from tests.fixtures import generate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CORPUS = FIXTURES / "ocpp"
MALFORMED = FIXTURES / "frames" / "malformed.json"

VERSIONS = {"v16": "1.6", "v201": "2.0.1", "v21": "2.1"}

# Actions that travel as SEND (message type 6) rather than CALL: only this one, in 2.1.
SEND_ACTIONS = {("2.1", "NotifyPeriodicEventStream")}

FRAME_CLASSES: dict[str, type[Any]] = {
    "Call": Call,
    "CallResult": CallResult,
    "CallError": CallError,
}


@dataclass(frozen=True)
class Case:
    """One corpus file."""

    folder: str
    action: str
    valid: bool
    path: Path

    @property
    def version(self) -> str:
        return VERSIONS[self.folder]

    @property
    def code(self) -> str | None:
        """The expected error code (invalid files), from the file name."""
        return None if self.valid else self.path.name.split("--", 1)[0]

    @property
    def kind(self) -> str:
        """ "request" or "response", from the file name."""
        rest = self.path.name.split("--", 1)[-1].removeprefix("gen-")
        kind = rest.split("-", 1)[0]
        if kind not in ("request", "response"):
            raise ValueError(f"{self.id}: the name says neither request- nor response-")
        return kind

    @property
    def id(self) -> str:
        status = "valid" if self.valid else "invalid"
        return f"{self.folder}/{self.action}/{status}/{self.path.stem}"


def corpus_cases() -> list[Case]:
    return [
        Case(folder, action_dir.name, status == "valid", path)
        for folder in VERSIONS
        for action_dir in sorted((CORPUS / folder).glob("*/"))
        for status in ("valid", "invalid")
        for path in sorted((action_dir / status).glob("*.json"))
    ]


CASES = corpus_cases()


@functools.cache
def station_codec(version: str) -> Codec:
    """A codec playing the station: it decodes the CALLs the CSMS sends."""
    return Codec(version, schema_dir(version), role="station")


def receive_request(
    version: str, action: str, payload: Any
) -> Call | CallResult | CallError | Ignored:
    """Frame ``payload`` as the peer would send it and decode it on the receiving side."""
    csms = codec_for(version)
    message_type = 6 if (version, action) in SEND_ACTIONS else 2
    frame = json.dumps([message_type, "id1", action, payload]).encode()
    receiver = csms if action in csms.actions("station") else station_codec(version)
    return receiver.decode(frame)


def submit(case: Case, payload: Any) -> None:
    """Put ``payload`` through the API that checks it, asserting what comes out if accepted."""
    if case.kind == "request":
        frame = receive_request(case.version, case.action, payload)
        assert isinstance(frame, Call)
        assert (frame.action, frame.payload) == (case.action, payload)
    else:
        encoded = codec_for(case.version).encode_call_result(case.action, "id1", payload)
        assert json.loads(encoded) == [3, "id1", payload]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case) -> None:
    payload = json.loads(case.path.read_text(encoding="utf-8"))
    if case.code is None:
        try:
            submit(case, payload)
        except OcppError as e:
            pytest.fail(f"refused with {e.code} at {e.path!r} ({e.keyword}): {e.description}")
        return
    with pytest.raises(OcppError) as info:
        submit(case, payload)
    err = info.value
    got = f"{type(err).__name__} {err.code} at {err.path!r} ({err.keyword}): {err.description}"
    assert err.code == case.code, f"expected {case.code}, got {got}"
    if case.kind == "request":  # a refused CALL is answered under its own id
        assert err.unique_id == "id1"


@pytest.mark.parametrize("folder", VERSIONS)
def test_corpus_is_not_empty(folder: str) -> None:
    valid = [c for c in CASES if c.folder == folder and c.valid]
    invalid = [c for c in CASES if c.folder == folder and not c.valid]
    assert valid, f"no valid payloads for {folder}; run `python -m tests.fixtures.generate`"
    assert invalid, f"no invalid payloads for {folder}; run `python -m tests.fixtures.generate`"


def test_generated_fixtures_are_up_to_date() -> None:
    problems = generate.stale(generate.build())
    assert not problems, (
        f"{len(problems)} generated fixture(s) out of date, run "
        f"`.venv/bin/python -m tests.fixtures.generate`: {problems[:10]}"
    )


@dataclass(frozen=True)
class Row:
    """One (malformed.json row, version) pair."""

    id: str
    version: str
    frame: bytes
    expect: dict[str, Any]


def frame_text(row: dict[str, Any], version: str) -> str:
    repeat = row.get("frame_repeat")
    if repeat is not None:
        return str(repeat["text"]) * int(repeat["times"]) + str(repeat.get("suffix", ""))
    frame = row["frame"]
    return str(frame if isinstance(frame, str) else frame[version])


def malformed_rows() -> list[Row]:
    rows = json.loads(MALFORMED.read_text(encoding="utf-8"))
    return [
        Row(row["id"], version, frame_text(row, version).encode(), expect)
        for row in rows
        for version, expect in row["expect"].items()
    ]


ROWS = malformed_rows()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.id}-{r.version}" for r in ROWS])
def test_malformed_frame(row: Row) -> None:
    codec = codec_for(row.version)
    expect = row.expect
    if "code" in expect:
        with pytest.raises(OcppError) as info:
            codec.decode(row.frame)
        got = (info.value.code, info.value.unique_id)
        assert got == (expect["code"], expect["unique_id"]), info.value.description
        return
    frame = codec.decode(row.frame)
    if expect.get("ignored"):
        assert isinstance(frame, Ignored)
    else:
        assert isinstance(frame, FRAME_CLASSES[expect["ok"]])


@pytest.mark.parametrize("version", VERSIONS.values())
def test_malformed_table_covers_every_version(version: str) -> None:
    assert any(r.version == version for r in ROWS)
