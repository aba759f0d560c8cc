"""One shared :class:`~csms._core.Codec` per (version, options), built from the ``ocpp`` package's
schemas. Schemas compile once per process, never per frame."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from csms._core import Codec

# The `ocpp` package names its schema folders after the version without dots.
_SCHEMA_FOLDERS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


@dataclass(frozen=True, slots=True)
class CodecOptions:
    """Limits and strictness of a codec; the defaults are the gateway's."""

    role: str = "csms"
    max_frame_bytes: int = 64 * 1024
    max_depth: int = 32
    validate_formats: bool = False
    validate_outbound: bool = True


def schema_dir(version: str) -> Path:
    """The directory of the official OCA JSON schemas for ``version`` ("1.6", "2.0.1", "2.1").

    Raises:
        ValueError: for a version we do not speak.
        ModuleNotFoundError: if the ``ocpp`` package is not installed.
    """
    folder = _SCHEMA_FOLDERS.get(version)
    if folder is None:
        raise ValueError(f"unsupported OCPP version {version!r}")
    spec = importlib.util.find_spec("ocpp")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the 'ocpp' package (which ships the OCA schemas) is missing")
    return Path(spec.origin).parent / folder / "schemas"


@functools.cache
def codec_for(version: str, options: CodecOptions = CodecOptions()) -> Codec:
    """The shared codec of ``version`` with ``options`` (built on first use).

    Raises:
        ValueError: for an unsupported version; ``SchemaLoadError`` if the schemas are unusable.
    """
    return Codec(
        version,
        schema_dir(version),
        role=options.role,
        max_frame_bytes=options.max_frame_bytes,
        max_depth=options.max_depth,
        validate_formats=options.validate_formats,
        validate_outbound=options.validate_outbound,
    )
