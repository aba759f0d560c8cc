"""csms.protocol: the Python face of the Rust OCPP-J core (``csms._core``).

Owns: building one shared :class:`Codec` per OCPP version from the official OCA schemas that the
``ocpp`` package ships, subprotocol negotiation, and the exception tree that carries every
CALLERROR's code, id and description. Does no I/O beyond reading the schema files once, and
imports nothing above it (no gateway, streams, asyncio or sockets).
"""

from csms._core import (
    SUPPORTED_VERSIONS,
    ActionError,
    Call,
    CallError,
    CallResult,
    Codec,
    FrameError,
    Ignored,
    MessageTypeError,
    OcppError,
    PayloadError,
    SchemaLoadError,
    may_hold_negative,
)
from csms._core import __version__ as core_version
from csms.protocol.codecs import CodecOptions, codec_for, schema_dir
from csms.protocol.versions import negotiate_subprotocol, version_of_subprotocol

Frame = Call | CallResult | CallError | Ignored
"""What ``Codec.decode`` returns."""

__all__ = [
    "SUPPORTED_VERSIONS",
    "ActionError",
    "Call",
    "CallError",
    "CallResult",
    "Codec",
    "CodecOptions",
    "Frame",
    "FrameError",
    "Ignored",
    "MessageTypeError",
    "OcppError",
    "PayloadError",
    "SchemaLoadError",
    "codec_for",
    "core_version",
    "may_hold_negative",
    "negotiate_subprotocol",
    "schema_dir",
    "version_of_subprotocol",
]
