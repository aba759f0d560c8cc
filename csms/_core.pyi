"""Typed face of the Rust extension ``csms._core`` (checked by ``mypy.stubtest`` in ``make lint``).

Import it only through ``csms.protocol`` (frames) or ``streams.nats_wire`` (the event writer's
byte work: ``exchange_message``, ``scan_acks``).
"""

from os import PathLike
from typing import Any, ClassVar, Final, final

__version__: Final[str]
SUPPORTED_VERSIONS: Final[list[str]]

class OcppError(ValueError):
    """A refused frame or payload; carries everything its CALLERROR needs."""

    code: str
    """The RPC error code spelled for the connection's version."""
    unique_id: str
    """The frame's message id, or "-1" when it could not be read."""
    description: str
    message_type_id: int | None
    path: str | None
    keyword: str | None

class FrameError(OcppError): ...
class MessageTypeError(OcppError): ...
class ActionError(OcppError): ...
class PayloadError(OcppError): ...
class SchemaLoadError(ValueError): ...

@final
class Call:
    """CALL (2) or, in 2.1, SEND (6). ``payload`` is built on first access and cached."""

    @property
    def message_type_id(self) -> int: ...
    @property
    def unique_id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...

@final
class CallResult:
    MESSAGE_TYPE_ID: ClassVar[int]
    @property
    def message_type_id(self) -> int: ...
    @property
    def unique_id(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...

@final
class CallError:
    """CALLERROR (4) or, in 2.1, CALLRESULTERROR (5), as the peer wrote it."""

    @property
    def message_type_id(self) -> int: ...
    @property
    def unique_id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def details(self) -> dict[str, Any]: ...

@final
class Ignored:
    """A message type the version says to ignore (1.6, 2.1)."""

    @property
    def message_type_id(self) -> int: ...
    @property
    def unique_id(self) -> str | None: ...

@final
class Codec:
    """Decoder and encoder for one OCPP version; build one per version and share it."""

    def __new__(
        cls,
        version: str,
        schema_dir: str | PathLike[str],
        *,
        role: str = "csms",
        max_frame_bytes: int = 65536,
        max_depth: int = 32,
        validate_formats: bool = False,
        validate_outbound: bool = True,
    ) -> Codec: ...
    @property
    def version(self) -> str: ...
    @property
    def subprotocol(self) -> str: ...
    @property
    def max_frame_bytes(self) -> int: ...
    def actions(self, sender: str | None = None) -> list[str]: ...
    def decode(self, data: bytes) -> Call | CallResult | CallError | Ignored: ...
    def acknowledge(
        self, data: bytes, acknowledged: dict[str, bytes | None], checked: frozenset[str]
    ) -> tuple[str, str, bytes] | None:
        """``(unique_id, action, answer)`` when ``data`` is a valid CALL answered
        ``[3, id, {}]``: its action is a key of ``acknowledged`` whose value is None, or bytes
        the frame does not contain. None when the action is in ``checked`` and the frame may
        hold a negative value, and for everything else (decode it with ``decode``)."""
    def decode_batch(
        self, frames: list[bytes]
    ) -> list[Call | CallResult | CallError | Ignored | OcppError]: ...
    def check_response(self, action: str, result: CallResult) -> None: ...
    def check_request(self, action: str, payload: Any) -> None: ...
    def encode_call(self, unique_id: str, action: str, payload: Any) -> bytes: ...
    def encode_send(self, unique_id: str, action: str, payload: Any) -> bytes: ...
    def encode_call_result(self, action: str, unique_id: str, payload: Any) -> bytes: ...
    def encode_call_error(
        self, unique_id: str, code: str, description: str = "", details: Any = None
    ) -> bytes: ...
    def encode_call_result_error(
        self, unique_id: str, code: str, description: str = "", details: Any = None
    ) -> bytes: ...
    def spell(self, code: str) -> str: ...

def exchange_message(
    subject: str,
    reply_prefix: str,
    token: int,
    node_id: str,
    session_id: str,
    station_id: str,
    ocpp_version: str,
    unique_id: str,
    action: str,
    seq: int,
    call: bytes,
    call_at_ns: int,
    answer_type: int,
    answer: bytes,
    answer_at_ns: int,
) -> bytes:
    """The NATS HPUB command storing a station's CALL (event ``seq``) and our answer (event
    ``seq + 1``) as one message, with ``Nats-Msg-Id`` = the CALL's event id and the reply subject
    ``<reply_prefix>.<token>``. The body is a ``csms.exchange`` envelope (version 2, both frames
    embedded verbatim) when both frames are bare JSON arrays without ``\\u`` escapes, else the
    two ``csms.frame`` envelopes byte for byte as ``streams.envelope.encode_many`` writes them;
    ``streams.envelope.decode_many`` reads both as the same events. The frames must be JSON (a
    CALL the codec accepted, an answer it encoded). ValueError if a frame is not UTF-8."""

def scan_acks(data: bytes, start: int, prefix: bytes) -> tuple[int, list[tuple[int, int]]]:
    """``(position, [(token, stream sequence), ...])``: the successful JetStream PubAcks
    (``MSG <prefix>.<token> <sid> <len>``) in ``data`` from ``start`` on, up to the first
    operation that is anything else or incomplete, which ends at ``position``."""

def may_hold_negative(frame: bytes) -> bool:
    """Could the frame hold a negative number or a string starting with ``-`` (a byte scan, no
    parse)? False is certain; True means the payload has to be read (M30 flags)."""

FOLD_EVENT_COLUMNS: list[str]
"""The ``events`` columns of ``fold_exchanges``' blocks (``streams.projections.rows.COLUMNS``)."""
FOLD_FACT_COLUMNS: list[str]
"""The ``transaction_facts`` columns of its blocks."""

def fold_exchanges(
    messages: list[tuple[int, str, bytes, int]],
) -> tuple[list[int], bytes, int, bytes, int, list[tuple[str, int]]]:
    """The projector's compiled fold of ``(stream seq, subject, data, stored ms)`` messages:
    ``(declined, events, n_events, facts, n_facts, seen)``. Version 2 exchanges it accepts become
    ``n_events`` ``events`` rows and ``n_facts`` ``transaction_facts`` rows, each table one
    ClickHouse ``Native`` block, exactly as ``streams.projections.fold`` folds them; ``seen`` is
    each station's latest time (ns) in them; ``declined`` are the indices of the messages it
    leaves to the Python fold (anything else, and anything unusual). The GIL is released."""

def native_block(table: str, rows: list[list[Any]]) -> bytes:
    """The ``Native`` block of ``rows`` of ``events`` or ``transaction_facts`` (lists in
    ``streams.projections.rows.COLUMNS`` order); ValueError or TypeError for a value that does
    not fit its column."""
