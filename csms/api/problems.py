"""Errors as RFC 9457 problem details (``application/problem+json``), for every route."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from nats.errors import Error as NatsError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:csms:problem:"


class ProblemError(HTTPException):
    """An HTTP error with a problem ``type`` slug and extension members."""

    def __init__(self, status: int, slug: str, detail: str, **extensions: Any) -> None:
        super().__init__(status_code=status, detail=detail)
        self.slug = slug
        self.extensions = {k: v for k, v in extensions.items() if v is not None}


def problem(status: int, slug: str, title: str, detail: str, **ext: Any) -> Response[Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **ext,
    }
    return Response(body, status_code=status, media_type=MEDIA_TYPE)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def http_exception_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ProblemError):
        return problem(status, exc.slug, _title(status), exc.detail, **exc.extensions)
    ext: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        ext["errors"] = exc.extra
    slug = _title(status).lower().replace(" ", "-")
    response = problem(status, slug, _title(status), exc.detail, **ext)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    status = HTTP_500_INTERNAL_SERVER_ERROR
    return problem(status, "internal-error", _title(status), "internal error")


def nats_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """NATS unreachable or too slow: the request may be retried (503), not a bug (500)."""
    log.warning("NATS unavailable on %s %s: %s", request.method, request.url.path, exc)
    status = HTTP_503_SERVICE_UNAVAILABLE
    return problem(status, "nats-unavailable", _title(status), "NATS is not reachable; retry")


EXCEPTION_HANDLERS = {
    HTTPException: http_exception_handler,
    NatsError: nats_error_handler,
    Exception: internal_error_handler,
}


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, with the extension members this API adds where they apply."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    """The OCPP error code (invalid payload, the station's CALLERROR)."""
    path: str | None = None
    """JSON pointer of an invalid payload's offending value."""
    keyword: str | None = None
    """The JSON-schema keyword an invalid payload broke."""
    outcome: str | None = None
    """A command's outcome (call_error, timeout, disconnected, …)."""
    command_id: str | None = None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "An API key is required, or the key is unknown or revoked",
    404: "Unknown or offline station (or unknown resource)",
    409: "A station credential (password, certificate): changed only through `csms stations`",
    422: "Invalid payload: nothing was sent to the station",
    502: "The station answered with a CALLERROR (or an answer that does not conform)",
    504: "No answer from the station in time, or it disconnected first",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses of an operation."""
    return {
        status: ResponseSpec(
            Problem,
            description=_DESCRIPTIONS[status],
            media_type=MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }
