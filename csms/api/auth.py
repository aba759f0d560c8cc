"""API-key authentication of ``/api/``: ``Authorization: Bearer csms_<id>_<secret>``.

While no key exists (the embedded demo) the API is open; once one does, every ``/api/`` call
needs a valid key. ``/healthz``, ``/metrics`` and ``/schema`` are always open.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from csms.api.problems import ProblemError
from csms.api.services import ApiServices

ANONYMOUS = "anonymous"
_STATE_KEY = "csms_api_key"


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    services: ApiServices = connection.app.state.services
    if not services.keys.required:
        return
    header = connection.headers.get("authorization", "")
    scheme, _sep, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
    record = await services.keys.verify(presented.strip())
    if record is None:
        raise _unauthorized("unknown or revoked API key")
    connection.scope.setdefault("state", {})[_STATE_KEY] = f"apikey:{record.name}"


def requested_by(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who asked, as recorded with each command."""
    name: str = connection.scope.get("state", {}).get(_STATE_KEY, ANONYMOUS)
    return name


def _unauthorized(detail: str) -> ProblemError:
    error = ProblemError(401, "unauthorized", detail)
    error.headers = {"WWW-Authenticate": 'Bearer realm="csms"'}
    return error
