"""Property tests over every action of OCPP 1.6, 2.0.1 and 2.1, request and response.

For each (version, action, kind) case, payloads are generated from the action's OCA schema with
``hypothesis_jsonschema.from_schema`` and pushed through what the gateway calls: a request is
framed as a CALL (a SEND for 2.1's ``NotifyPeriodicEventStream``) and decoded by the codec of the
role that receives it (CSMS for station-initiated actions, station for CSMS-initiated ones, which
also go through ``check_request``); a response goes through ``encode_call_result`` of the role
that answers (and, for CSMS-initiated actions, through ``decode`` + ``check_response`` of the
CSMS codec). Every path that applies must give the same verdict.

Properties:

1. a generated payload is accepted (and decoded/encoded unchanged); so is the same payload with
   one length-limited string set to exactly ``maxLength`` non-ASCII code points;
2. one mutation of a generated payload (missing required property, value of another JSON type,
   string one over ``maxLength``, value outside the enum, unknown property where
   ``additionalProperties`` is false, array below ``minItems`` / above ``maxItems``, number below
   ``minimum`` / above ``maximum``) is refused with exactly the RPC error code of the version's
   decision table (see ``expected_code``), at the mutated location;
3. on every payload of 1 and 2, our acceptance equals that of the ``ocpp`` package's own
   validator (``ocpp.messages.get_validator``, a jsonschema ``Draft4Validator``).

The payload generator is not given the raw schema but a copy (``generation_schema``) that differs
in five documented ways; the validators always see the raw schema.

Runtime: ``CSMS_PROPERTY_EXAMPLES`` (default 5) examples per case and test; derandomized when
``CI=true``.
"""

from __future__ import annotations

import copy
import decimal
import enum
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import hypothesis.internal.conjecture.utils as conjecture_utils
import hypothesis_jsonschema._from_schema as hjs_from_schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from ocpp.messages import get_validator

from csms.protocol import (
    Call,
    CallResult,
    Codec,
    CodecOptions,
    PayloadError,
    codec_for,
    schema_dir,
)

JSON = Any
Location = tuple[str | int, ...]

VERSIONS = ("1.6", "2.0.1", "2.1")
REQUEST, RESPONSE = "request", "response"

# Actions that travel as SEND (message type 6, no response) rather than CALL.
SEND_ACTIONS = {("2.1", "NotifyPeriodicEventStream")}

# Generated payloads reach ~20 kB, and the above-maxItems mutation repeats an element up to 1025
# times; the frame limit is not what these tests are about, so it is raised well out of the way.
BIG_FRAMES = 64 * 1024 * 1024

# ---------------------------------------------------------------------------------------------
# hypothesis-jsonschema 0.23.1 (its latest release) drives a private Hypothesis helper through
# `many(...).more()`, which Hypothesis 6.170 no longer has (`many` is now a context manager that
# is iterated). Without this shim every object schema fails to generate with
# "AttributeError: 'many' object has no attribute 'more'". It adds back only that one method, on
# top of the new protocol, and only when it is missing.
if not hasattr(conjecture_utils.many, "more"):

    def _many_more(self: Any) -> bool:
        if not hasattr(self, "_compat_iterator"):
            self.__enter__()
            self._compat_iterator = iter(self)
        try:
            next(self._compat_iterator)
        except StopIteration:
            self.__exit__(None)
            return False
        return True

    setattr(conjecture_utils.many, "more", _many_more)  # noqa: B010 - mypy: no such attribute


# hypothesis-jsonschema rebuilds the strategy of every property of an object each time it draws
# that object (resolving references and canonicalising the subschema anew), which made the large
# 2.x schemas take seconds per example. Strategies are immutable, so the same subschema can share
# one: this memoises its internal `__from_schema` by the subschema's JSON text (about 3x faster
# overall). The cache keeps the alphabet and formats objects alive, so their ids stay unique.
def _memoise_hypothesis_jsonschema() -> None:
    original = getattr(hjs_from_schema, "__from_schema", None)
    if original is None:  # renamed in some later release: correct, only slower
        return
    cache: dict[tuple[str, int, int], tuple[Any, Any, Any]] = {}

    def memoised(schema: Any, *, alphabet: Any, custom_formats: Any) -> Any:
        key = (json.dumps(schema, sort_keys=True), id(alphabet), id(custom_formats))
        if key not in cache:
            strategy = original(schema, alphabet=alphabet, custom_formats=custom_formats)
            cache[key] = (strategy, alphabet, custom_formats)
        return cache[key][0]

    setattr(hjs_from_schema, "__from_schema", memoised)


_memoise_hypothesis_jsonschema()

# ---------------------------------------------------------------------------------------------
# Hypothesis settings

CI = os.environ.get("CI", "").lower() == "true"
settings.register_profile(
    "csms-protocol-properties",
    max_examples=int(os.environ.get("CSMS_PROPERTY_EXAMPLES", "5")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        # Generating from the large 2.x schemas is slow and their payloads are big; that is the
        # point of these tests, not a problem with the strategy.
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        # hypothesis-jsonschema filters internally (formats, names of extra properties).
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile(
    "csms-protocol-properties-ci",
    parent=settings.get_profile("csms-protocol-properties"),
    derandomize=True,
    database=None,
)
PROPERTY_SETTINGS = settings.get_profile(
    "csms-protocol-properties-ci" if CI else "csms-protocol-properties"
)

# ---------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    version: str
    action: str
    kind: str  # REQUEST or RESPONSE

    @property
    def id(self) -> str:
        return f"{self.version}-{self.action}-{self.kind}"

    @property
    def schema_file(self) -> str:
        if self.kind == RESPONSE:
            return f"{self.action}Response.json"
        if self.version == "1.6" or self.is_send:
            return f"{self.action}.json"
        return f"{self.action}Request.json"

    @property
    def is_send(self) -> bool:
        return (self.version, self.action) in SEND_ACTIONS

    @property
    def message_type_id(self) -> int:
        """The message type of the frame carrying this payload (also ocpp's validator key)."""
        if self.kind == RESPONSE:
            return 3
        return 6 if self.is_send else 2


def all_cases() -> list[Case]:
    cases = []
    for version in VERSIONS:
        for action in sorted(codec_for(version).actions()):
            cases.append(Case(version, action, REQUEST))
            if (version, action) not in SEND_ACTIONS:
                cases.append(Case(version, action, RESPONSE))
    return cases


CASES = all_cases()


@functools.cache
def load_schema(case: Case) -> dict[str, JSON]:
    text = (schema_dir(case.version) / case.schema_file).read_text(encoding="utf-8-sig")
    schema: dict[str, JSON] = json.loads(text)
    return schema


def test_every_schema_file_is_a_case() -> None:
    """The cases cover every schema the `ocpp` package ships, and nothing else."""
    for version in VERSIONS:
        files = {path.name for path in schema_dir(version).glob("*.json")}
        covered = {case.schema_file for case in CASES if case.version == version}
        assert covered == files, version


# ---------------------------------------------------------------------------------------------
# Generation

# Arrays are generated with at most this many elements (or minItems, if larger). Nested arrays
# of objects otherwise multiply into hundreds of objects per payload, which made generation
# several times slower; the maxItems boundary itself is still tested by the above-maxItems
# mutation, which is computed from the raw schema.
GENERATED_MAX_ITEMS = 2
ANNOTATIONS = frozenset({"description", "javaType", "comment", "title"})
GENERATED_MIN_NUMBER, GENERATED_MAX_NUMBER = -(2**63), 2**64 - 1
_SCALAR = {
    "type": ["null", "boolean", "integer", "number", "string"],
    "minimum": GENERATED_MIN_NUMBER,
    "maximum": GENERATED_MAX_NUMBER,
}
GENERATED_EXTRA_VALUE = {
    "anyOf": [
        _SCALAR,
        {"type": "array", "items": _SCALAR, "maxItems": GENERATED_MAX_ITEMS},
        {"type": "object", "additionalProperties": _SCALAR, "maxProperties": GENERATED_MAX_ITEMS},
    ]
}


def generation_schema(schema: JSON, *, root: bool = True) -> JSON:
    """The copy of ``schema`` that payloads are generated from; it differs from the raw one in:

    1. no root ``$id``: the 2.1 schemas and the 1.6 security-extension schemas carry an
       ``urn:OCPP:...`` ``$id``, against which hypothesis-jsonschema resolves their local
       ``#/definitions/...`` references and then gives up with "hypothesis-jsonschema does not
       fetch remote references (uri='')". Local references do not depend on ``$id``.
    2. numbers under ``multipleOf`` are generated as integers: ``multipleOf: 0.1`` (3 1.6 actions)
       makes hypothesis-jsonschema produce binary floats such as 0.30000000000000004, which our
       validator (like ocpp, which parses these schemas with Decimal) rightly refuses. That is a
       known, intended divergence between float and decimal arithmetic, not a finding.
    3. arrays are capped at ``GENERATED_MAX_ITEMS`` elements (runtime; see there).
    4. no annotations (``description``, ``javaType``, ``comment``, ``title``): they do not
       constrain anything, and hypothesis-jsonschema re-encodes every subschema it draws from.
    5. numbers without bounds stay within [-2**63, 2**64 - 1] (the 64-bit integers): beyond that,
       our codec is known to lose integers; see ``test_integer_literals_decode_as_python_ints``
       and ``test_integers_beyond_64_bits_are_checked_and_encoded`` below. Where
       a schema allows properties of its own (``customData`` and a few 1.6 objects), their
       values, and values that may be anything (2.x DataTransfer's ``data``), are drawn from
       ``GENERATED_EXTRA_VALUE`` (scalars, or flat arrays and objects of them, numbers bounded
       as above) instead of arbitrary JSON, which has no such bound.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, JSON] = {}
    for key, value in schema.items():
        if (root and key == "$id") or (key in ANNOTATIONS and isinstance(value, str)):
            continue
        if key in ("properties", "definitions"):
            out[key] = {name: generation_schema(sub, root=False) for name, sub in value.items()}
        elif key in ("items", "additionalItems", "additionalProperties"):
            out[key] = generation_schema(value, root=False)
        else:
            out[key] = value
    if not root and not out.keys() & {"type", "$ref", "enum"}:
        # Any JSON value (2.x DataTransfer's `data`).
        return GENERATED_EXTRA_VALUE
    if "multipleOf" in out:
        out = {"type": "integer"} | {k: out[k] for k in ("minimum", "maximum") if k in out}
    if ("properties" in out or out.get("type") == "object") and out.get(
        "additionalProperties", True
    ) is True:
        out["additionalProperties"] = GENERATED_EXTRA_VALUE
    if out.get("type") in ("integer", "number"):
        out.setdefault("minimum", GENERATED_MIN_NUMBER)
        out.setdefault("maximum", GENERATED_MAX_NUMBER)
    if out.get("type") == "array":
        cap = max(out.get("minItems", 0), GENERATED_MAX_ITEMS)
        out["maxItems"] = min(out.get("maxItems", cap), cap)
    return out


@functools.cache
def payloads(case: Case) -> st.SearchStrategy[dict[str, JSON]]:
    strategy = from_schema(generation_schema(load_schema(case)))
    return cast("st.SearchStrategy[dict[str, JSON]]", strategy)  # every root is an object


# ---------------------------------------------------------------------------------------------
# Mutations


class Kind(enum.StrEnum):
    MISSING_REQUIRED = "missing-required"
    WRONG_TYPE = "wrong-type"
    TOO_LONG = "too-long"
    BAD_ENUM = "bad-enum"
    UNKNOWN_PROPERTY = "unknown-property"
    TOO_FEW_ITEMS = "too-few-items"
    TOO_MANY_ITEMS = "too-many-items"
    BELOW_MINIMUM = "below-minimum"
    ABOVE_MAXIMUM = "above-maximum"


def expected_code(kind: Kind, version: str) -> str:
    """The decision table: the RPC error code for a payload broken by ``kind``, per version."""
    legacy = version == "1.6"
    match kind:
        case Kind.MISSING_REQUIRED | Kind.TOO_FEW_ITEMS | Kind.TOO_MANY_ITEMS:
            # sic: OCPP-J 1.6 spells it with one "r".
            return "OccurenceConstraintViolation" if legacy else "OccurrenceConstraintViolation"
        case Kind.WRONG_TYPE | Kind.TOO_LONG:
            return "TypeConstraintViolation"
        case Kind.BAD_ENUM | Kind.BELOW_MINIMUM | Kind.ABOVE_MAXIMUM:
            return "PropertyConstraintViolation"
        case Kind.UNKNOWN_PROPERTY:
            return "FormationViolation" if legacy else "FormatViolation"


# The JSON Schema keyword that a mutation of each kind breaks.
KEYWORD = {
    Kind.MISSING_REQUIRED: "required",
    Kind.WRONG_TYPE: "type",
    Kind.TOO_LONG: "maxLength",
    Kind.BAD_ENUM: "enum",
    Kind.UNKNOWN_PROPERTY: "additionalProperties",
    Kind.TOO_FEW_ITEMS: "minItems",
    Kind.TOO_MANY_ITEMS: "maxItems",
    Kind.BELOW_MINIMUM: "minimum",
    Kind.ABOVE_MAXIMUM: "maximum",
}

# One value of each JSON type. No integral float anywhere (1.0 is an integer in draft 6 but not
# in draft 4), no integer where a float is meant.
TYPE_SAMPLES: dict[str, JSON] = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "number": 1.5,
    "string": "text",
    "array": [],
    "object": {},
}


@dataclass(frozen=True)
class Mutation:
    """Change one place of a payload: at ``location``, set the value to ``value`` (``key`` is
    None), delete the property ``key`` (``value`` is DELETE), or add the property ``key``."""

    kind: Kind
    location: Location
    key: str | None = None
    value: JSON = None

    def apply(self, payload: dict[str, JSON]) -> dict[str, JSON]:
        if self.key is None:
            return replaced(payload, self.location, self.value)
        out = copy.deepcopy(payload)
        parent: JSON = out
        for step in self.location:
            parent = parent[step]
        if self.value is DELETE:
            del parent[self.key]
        else:
            parent[self.key] = copy.deepcopy(self.value)
        return out

    def __repr__(self) -> str:
        where = json_pointer(self.location) or "/"
        detail = f" key={self.key!r}" if self.key is not None else ""
        value = "" if self.value is DELETE else f" value={_short(self.value)}"
        return f"Mutation({self.kind} at {where}{detail}{value})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints drawn values with this (a 1025-element array stays one line)."""
        printer.text(repr(self))


def replaced(payload: dict[str, JSON], location: Location, value: JSON) -> dict[str, JSON]:
    """A copy of ``payload`` with the value at ``location`` (never the root) set to ``value``."""
    assert location, "the payload root is never replaced"
    out = copy.deepcopy(payload)
    parent: JSON = out
    for step in location[:-1]:
        parent = parent[step]
    parent[location[-1]] = copy.deepcopy(value)
    return out


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: JSON = _Delete()


def _short(value: JSON) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} chars)"


def resolve(root: dict[str, JSON], schema: JSON) -> dict[str, JSON]:
    """Follow local ``$ref``s (all the OCA schemas use) to the schema they name."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        node: JSON = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    assert isinstance(schema, dict), schema
    return schema


def _type_matches(value: JSON, types: set[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool({"integer", "number"} & types)
    if isinstance(value, float):
        return "number" in types
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, list):
        return "array" in types
    return "object" in types


def _just_outside(bound: int | float, step: int) -> int | float:
    """``bound + step`` as an int when the bound is integral (the schemas write 0.0 for 0)."""
    if float(bound).is_integer():
        return int(bound) + step
    return bound + step


def mutations(
    root: dict[str, JSON], schema: JSON, value: JSON, location: Location = ()
) -> Iterator[Mutation]:
    """Every single-place mutation of the valid ``value`` that breaks one keyword (a value of
    another type in place of an enum string also misses the enum; its code is still the type's)."""
    node = resolve(root, schema)
    declared = node.get("type")
    if location and declared is not None:
        types = {declared} if isinstance(declared, str) else set(declared)
        for sample in TYPE_SAMPLES.values():
            if not _type_matches(sample, types):
                yield Mutation(Kind.WRONG_TYPE, location, value=sample)
    if isinstance(value, dict):
        yield from _object_mutations(root, node, value, location)
    elif isinstance(value, list):
        yield from _array_mutations(root, node, value, location)
    elif isinstance(value, str):
        if "enum" in node:
            bad = "NotAValue"[: node.get("maxLength", 9)]
            assert bad not in node["enum"]
            yield Mutation(Kind.BAD_ENUM, location, value=bad)
        elif "maxLength" in node:
            yield Mutation(Kind.TOO_LONG, location, value="x" * (node["maxLength"] + 1))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node:
            yield Mutation(Kind.BELOW_MINIMUM, location, value=_just_outside(node["minimum"], -1))
        if "maximum" in node:
            yield Mutation(Kind.ABOVE_MAXIMUM, location, value=_just_outside(node["maximum"], 1))


def _object_mutations(
    root: dict[str, JSON], node: dict[str, JSON], value: dict[str, JSON], location: Location
) -> Iterator[Mutation]:
    properties: dict[str, JSON] = node.get("properties", {})
    for name in node.get("required", []):
        assert name in value, (location, name)
        yield Mutation(Kind.MISSING_REQUIRED, location, key=name, value=DELETE)
    extra = node.get("additionalProperties", True)
    if extra is False:
        name = "unknownProperty"
        while name in properties:
            name += "X"
        yield Mutation(Kind.UNKNOWN_PROPERTY, location, key=name, value="x")
    for name, item in value.items():
        if name in properties:
            yield from mutations(root, properties[name], item, (*location, name))
        elif isinstance(extra, dict):
            yield from mutations(root, extra, item, (*location, name))


def _array_mutations(
    root: dict[str, JSON], node: dict[str, JSON], value: list[JSON], location: Location
) -> Iterator[Mutation]:
    items = node.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            yield from mutations(root, items, item, (*location, index))
    if node.get("minItems", 0) > 0:
        yield Mutation(Kind.TOO_FEW_ITEMS, location, value=value[: node["minItems"] - 1])
    if "maxItems" in node and value:
        # Repeat the smallest element (no schema here has uniqueItems).
        smallest = min(value, key=lambda item: len(json.dumps(item)))
        filler = [smallest] * (node["maxItems"] + 1 - len(value))
        yield Mutation(Kind.TOO_MANY_ITEMS, location, value=[*value, *filler])


def boundary_strings(
    root: dict[str, JSON], schema: JSON, value: JSON, location: Location = ()
) -> Iterator[tuple[Location, int]]:
    """Locations of strings with a ``maxLength`` and no enum, with that maxLength."""
    node = resolve(root, schema)
    if isinstance(value, dict):
        properties: dict[str, JSON] = node.get("properties", {})
        for name, item in value.items():
            if name in properties:
                yield from boundary_strings(root, properties[name], item, (*location, name))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            yield from boundary_strings(root, node["items"], item, (*location, index))
    elif isinstance(value, str) and "maxLength" in node and "enum" not in node:
        yield location, node["maxLength"]


def json_pointer(location: Location) -> str:
    return "".join("/" + str(step).replace("~", "~0").replace("/", "~1") for step in location)


# The core bounds the path it reports (core_rs/src/schema.rs MAX_PATH_CHARS): some 2.1 paths are
# longer, e.g. SetChargingProfile .../overstayFee/customData/vendorId.
MAX_PATH_CHARS = 120


def reported_pointer(location: Location) -> str:
    pointer = json_pointer(location)
    if len(pointer) > MAX_PATH_CHARS:
        return pointer[: MAX_PATH_CHARS - 1] + "…"
    return pointer


# ---------------------------------------------------------------------------------------------
# The two validators


@functools.cache
def station_codec(version: str) -> Codec:
    return Codec(version, schema_dir(version), role="station", max_frame_bytes=BIG_FRAMES)


def csms_codec(version: str) -> Codec:
    return codec_for(version, CodecOptions(max_frame_bytes=BIG_FRAMES))


@dataclass(frozen=True)
class Verdict:
    """What one path through our codec made of a payload: None if accepted."""

    code: str | None
    path: str | None = None
    keyword: str | None = None


UNIQUE_ID = "prop-1"


def _frame(*parts: JSON) -> bytes:
    return json.dumps(list(parts)).encode()


def _refused(error: PayloadError, expect_id: str) -> Verdict:
    assert error.unique_id == expect_id, error
    return Verdict(error.code, error.path, error.keyword)


def _via_decode(codec: Codec, case: Case, payload: dict[str, JSON]) -> Verdict:
    try:
        frame = codec.decode(_frame(case.message_type_id, UNIQUE_ID, case.action, payload))
    except PayloadError as error:
        return _refused(error, UNIQUE_ID)
    assert isinstance(frame, Call), frame
    assert (frame.message_type_id, frame.unique_id, frame.action) == (
        case.message_type_id,
        UNIQUE_ID,
        case.action,
    )
    assert frame.payload == payload
    return Verdict(None)


def _via_check_request(codec: Codec, case: Case, payload: dict[str, JSON]) -> Verdict:
    try:
        codec.check_request(case.action, payload)
    except PayloadError as error:
        return _refused(error, "-1")
    return Verdict(None)


def _via_encode_call_result(codec: Codec, case: Case, payload: dict[str, JSON]) -> Verdict:
    try:
        data = codec.encode_call_result(case.action, UNIQUE_ID, payload)
    except PayloadError as error:
        return _refused(error, "-1")
    assert json.loads(data) == [3, UNIQUE_ID, payload]
    return Verdict(None)


def _via_check_response(codec: Codec, case: Case, payload: dict[str, JSON]) -> Verdict:
    result = codec.decode(_frame(3, UNIQUE_ID, payload))
    assert isinstance(result, CallResult), result
    try:
        codec.check_response(case.action, result)
    except PayloadError as error:
        return _refused(error, UNIQUE_ID)
    assert result.payload == payload
    return Verdict(None)


Route = Callable[[Codec, Case, dict[str, JSON]], Verdict]


def paths(case: Case) -> list[tuple[str, Codec, Route]]:
    """Every way the gateway can meet this payload (DataTransfer goes both ways)."""
    out: list[tuple[str, Codec, Route]] = []
    csms, station = csms_codec(case.version), station_codec(case.version)
    from_station = case.action in csms.actions("station")
    from_csms = case.action in csms.actions("csms")
    assert from_station or from_csms, case
    if case.kind == REQUEST:
        if from_station:
            out.append(("csms.decode", csms, _via_decode))
        if from_csms:
            out.append(("station.decode", station, _via_decode))
            out.append(("csms.check_request", csms, _via_check_request))
    else:
        if from_station:
            out.append(("csms.encode_call_result", csms, _via_encode_call_result))
        if from_csms:
            out.append(("station.encode_call_result", station, _via_encode_call_result))
            out.append(("csms.check_response", csms, _via_check_response))
    return out


def our_verdict(case: Case, payload: dict[str, JSON]) -> Verdict:
    """Our codec's verdict; every path must agree on the code, path and keyword."""
    verdicts = {name: check(codec, case, payload) for name, codec, check in paths(case)}
    assert len(set(verdicts.values())) == 1, f"paths disagree: {verdicts}"
    return next(iter(verdicts.values()))


# ocpp parses these three 1.6 schemas and their payloads with Decimal (ocpp.messages.
# _validate_payload) because of their `multipleOf: 0.1`; mirror it.
OCPP_DECIMAL = {
    ("1.6", "SetChargingProfile", REQUEST),
    ("1.6", "RemoteStartTransaction", REQUEST),
    ("1.6", "GetCompositeSchedule", RESPONSE),
}


def ocpp_accepts(case: Case, payload: dict[str, JSON]) -> bool:
    """The `ocpp` package's verdict on the payload as it travels (JSON text)."""
    parse_float: Callable[[str], Any] = float
    if (case.version, case.action, case.kind) in OCPP_DECIMAL:
        parse_float = decimal.Decimal
    # For the 2.1 SEND, message type 6 makes get_validator read `NotifyPeriodicEventStream.json`.
    validator = get_validator(case.message_type_id, case.action, case.version, parse_float)
    accepted: bool = validator.is_valid(json.loads(json.dumps(payload), parse_float=parse_float))
    return accepted


# ---------------------------------------------------------------------------------------------
# The properties

BOUNDARY_CHARS = ("é", "€", "\U0001f600")  # 2, 3 and 4 bytes in UTF-8; the last is astral

# Cases where our codec is known to disagree with the expectation, by test: strict xfails, so
# each turns into a failure (and its entry must go) once the codec is fixed.
KNOWN_DISAGREEMENTS: dict[str, dict[str, str]] = {
    "test_generated_payloads_are_accepted": {},
    "test_single_mutations_give_the_expected_code": {},
}


def cases_of(test: str) -> list[Any]:
    known = KNOWN_DISAGREEMENTS[test]
    unknown_ids = set(known) - {case.id for case in CASES}
    assert not unknown_ids, unknown_ids
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=known[case.id])]
            if case.id in known
            else [],
        )
        for case in CASES
    ]


@pytest.mark.parametrize("case", cases_of("test_generated_payloads_are_accepted"))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_generated_payloads_are_accepted(case: Case, data: st.DataObject) -> None:
    """Properties 1 and 3: a valid payload is accepted, by us and by ocpp."""
    schema = load_schema(case)
    payload = data.draw(payloads(case), label="payload")

    assert our_verdict(case, payload) == Verdict(None)
    assert ocpp_accepts(case, payload), "ocpp refuses a payload generated from the schema"

    # A string of exactly maxLength code points, whatever their UTF-8 length, is still valid.
    sites = sorted(boundary_strings(schema, schema, payload))
    if sites:
        location, max_length = data.draw(st.sampled_from(sites), label="boundary string")
        char = data.draw(st.sampled_from(BOUNDARY_CHARS), label="boundary char")
        edited = replaced(payload, location, char * max_length)
        assert our_verdict(case, edited) == Verdict(None)
        assert ocpp_accepts(case, edited)


@pytest.mark.parametrize("case", cases_of("test_single_mutations_give_the_expected_code"))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_single_mutations_give_the_expected_code(case: Case, data: st.DataObject) -> None:
    """Properties 2 and 3: a payload broken in one place gets the decision table's code (at that
    place), and ocpp refuses it too."""
    schema = load_schema(case)
    payload = data.draw(payloads(case), label="payload")
    by_kind: dict[Kind, list[Mutation]] = {}
    for mutation in mutations(schema, schema, payload):
        by_kind.setdefault(mutation.kind, []).append(mutation)
    # Every schema has an object root with additionalProperties false or a required property.
    assert by_kind, "no mutation applies"
    kind = data.draw(st.sampled_from(sorted(by_kind)), label="kind")
    mutation = data.draw(st.sampled_from(by_kind[kind]), label="mutation")
    mutated = mutation.apply(payload)

    expected = Verdict(
        expected_code(kind, case.version), reported_pointer(mutation.location), KEYWORD[kind]
    )
    assert our_verdict(case, mutated) == expected
    assert not ocpp_accepts(case, mutated), "ocpp accepts the mutated payload"


# ---------------------------------------------------------------------------------------------
# Divergences from the `ocpp` package found while writing the properties, outside what the
# generator produces; pinned as strict xfails like KNOWN_DISAGREEMENTS.


def _cancel_reservation(literal: bytes) -> bytes:
    """A CancelReservation CALL (CSMS to station) whose integer is written as ``literal``."""
    return b'[2,"i","CancelReservation",{"reservationId":' + literal + b"}]"


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="core_rs: integer literals outside [-2**63, 2**64-1] are accepted but decoded as "
    "Python floats, and -0 is decoded as -0.0 (2.x) or refused as not an integer (1.6); "
    "json.loads, and so ocpp, give the exact int",
)
@pytest.mark.parametrize("literal", [b"18446744073709551616", b"-9223372036854775809", b"-0"])
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_integer_literals_decode_as_python_ints(version: str, literal: bytes) -> None:
    frame = _cancel_reservation(literal)
    sent = json.loads(frame)[3]
    assert ocpp_accepts(Case(version, "CancelReservation", REQUEST), sent)
    try:
        call = station_codec(version).decode(frame)
    except PayloadError as error:
        raise AssertionError(f"refused: {error.code}: {error.description}") from error
    assert isinstance(call, Call)
    assert call.payload == sent
    assert type(call.payload["reservationId"]) is int


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason="core_rs: check_request/encode_call raise a plain ValueError('integer out of the JSON "
    "range') for a Python int beyond 64 bits, which ocpp accepts",
)
@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_integers_beyond_64_bits_are_checked_and_encoded(value: int) -> None:
    payload = {"reservationId": value}
    assert get_validator(2, "CancelReservation", "1.6").is_valid(payload)
    try:
        csms_codec("1.6").check_request("CancelReservation", payload)
        frame = csms_codec("1.6").encode_call("i", "CancelReservation", payload)
    except PayloadError as error:  # also a ValueError, but not the one pinned here
        raise AssertionError(f"refused: {error.code}: {error.description}") from error
    assert json.loads(frame) == [2, "i", "CancelReservation", payload]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="core_rs: in 1.6 (draft 4) an exponent literal of 2**64 or more (5e20, 1e300) passes "
    "as an integer while 1e2 does not; ocpp (Draft4Validator) refuses all of them",
)
@pytest.mark.parametrize("literal", [b"5e20", b"1e300"])
def test_draft4_integer_refuses_large_exponent_literals(literal: bytes) -> None:
    case = Case("1.6", "CancelReservation", REQUEST)
    payload = json.loads(_cancel_reservation(literal))[3]
    assert not ocpp_accepts(case, payload)
    assert our_verdict(case, payload) == Verdict(
        "TypeConstraintViolation", "/reservationId", "type"
    )
