"""Id-token policy for Authorize: accept-all by default, with allow and deny lists."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """``status`` answers Accepted, Blocked or Invalid; tokens are compared case-insensitively
    (1.6 IdToken is a CiString)."""

    accept_unknown: bool = True
    allow: frozenset[str] = field(default_factory=frozenset)
    deny: frozenset[str] = field(default_factory=frozenset)

    def status(self, id_token: str) -> str:
        token = id_token.casefold()
        if token in {t.casefold() for t in self.deny}:
            return "Blocked"
        if token in {t.casefold() for t in self.allow} or self.accept_unknown:
            return "Accepted"
        return "Invalid"
