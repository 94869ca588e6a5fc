"""Every error as ``{"error": {"code", "message", "field"}}`` with a stable code.

``AlienError`` subclasses map to their own status; FastAPI's request validation becomes 422
``VALIDATION_ERROR`` naming the first bad field; unknown routes and methods get JSON 404/405; a
unique-constraint race becomes 409, a value the database refuses (a NUL in PostgreSQL text) 422;
anything else is a 500 ``INTERNAL`` whose details stay in the
server log (never in the response).

Every body passes through the process redactor (:func:`alien.redaction.redact`) on its way out:
an error message may quote what a caller sent or what a deployment reported, and neither a token
nor a registered secret may come back in it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from alien.errors import AlienError
from alien.redaction import redact

log = logging.getLogger("alien.manager")

_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def error_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one way an error leaves the manager: redacted, as JSON."""
    return JSONResponse(redact(body), status_code=status, headers=headers)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """``("body", "targets", "deployments", 0)`` → ``"targets.deployments.0"``.

    Query, path and header parameters are named by their parameter alone (``state``, not
    ``state.0`` for the first value of a repeated ``?state=``): that is what a caller typed.
    """
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in _LOCATIONS - {"body"}:
        return parts[1]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or None


def validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = field_of(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        field = "body"
    where = f" at {field!r}" if field else ""
    message = f"invalid request{where}: {first.get('msg', 'invalid value')}"
    return error_response(error_body("VALIDATION_ERROR", message, field), 422)


def install(app: FastAPI) -> None:
    @app.exception_handler(AlienError)
    async def _alien(_: Request, exc: AlienError) -> JSONResponse:
        return error_response(exc.to_dict(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(error_body(code, message), exc.status_code, exc.headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error answered as 409: %s", exc.orig)
        return error_response(
            error_body("CONFLICT", "the change conflicts with a concurrent one; retry"), 409
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the request carried (a NUL character, a number out of its
        # range): the input's fault, answered as such rather than as a server error.
        log.info("data error answered as 422: %s", exc.orig)
        return error_response(
            error_body(
                "VALIDATION_ERROR", "the request holds a value the database cannot take", None
            ),
            422,
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(error_body("INTERNAL", "internal server error"), 500)
