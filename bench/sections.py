"""The one writer of marked sections in bench/README.md: each benchmark owns the text between
its own ``<!-- name:begin -->`` and ``<!-- name:end -->`` markers and leaves the rest alone."""

from __future__ import annotations

from pathlib import Path


def write_section(
    path: Path, begin: str, end: str, block: str, intro: str = "", after: str = ""
) -> None:
    """Replace the text from ``begin`` to ``end`` with ``block`` (which carries the markers);
    if the file has no such section (it is created from ``intro`` if missing), put ``block``
    right after the marker ``after`` if there is one, else at the end."""
    text = path.read_text() if path.exists() else intro
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif after and after in text:
        head, rest = text.split(after, 1)
        text = f"{head}{after}\n\n{block}\n\n{rest.lstrip()}"
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)
