"""The exception handlers that turn every failure on a route into the one JSON error shape
(`dispatcher/errors.py`): an `ApiError` as raised, FastAPI's validation as 400/422, and anything
unexpected as a 500 whose traceback stays in the operator's log.
"""

from __future__ import annotations

import errno
import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatcher.errors import ApiError, error_response

log = logging.getLogger("dispatcher")


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "invalid_json", "request body is not valid JSON"
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, retry_after=exc.retry_after, extra=exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe_validation(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _code_for(exc.status_code)
        return error_response(
            exc.status_code, _code_for(exc.status_code), message, headers=dict(exc.headers or {})
        )

    # Out of descriptors is a load to shed, not a bug: a 503 and one line, not a 500 and a traceback
    # (the handler for `Exception` answers too late for that: uvicorn logs the traceback after it).
    @app.exception_handler(OSError)
    async def _out_of_descriptors(request: Request, exc: OSError) -> JSONResponse:
        if request.scope["type"] != "http" or exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise exc  # as without this handler: `_unexpected` below
        log.warning("out of file descriptors on %s %s: answered 503", request.method, request.url.path)
        return error_response(503, "overloaded", "the dispatcher is out of resources: retry in a moment",
                              retry_after=1)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the operator's log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the dispatcher hit an unexpected error")
