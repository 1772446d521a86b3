"""Every error leaves the dispatcher as JSON `{"error": {"code", "message"}, "detail"}`, never a traceback.

`detail` repeats the message at the top level: Pipecat's clients (and FastAPI's convention, which
the Pipecat dev runner follows) show `info ?? detail` from an error body, so with it a client's
`onError` carries the real reason instead of the HTTP status text.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core
from fastapi.responses import JSONResponse

from botchannel.utf8_text import utf8_strings
from dispatcher.api_error import ApiError as ApiError  # its callers import it here too


class Utf8JSONResponse(JSONResponse):
    """Every answer's JSON (the app's default response class, and every error's), written as FastAPI's
    own fast path writes a response model (pydantic: NaN as null). A lone surrogate (JSON lets a bot
    or a client send `"\\ud800"`), from wherever it reached an answer, is written as U+FFFD rather
    than failing the encode as a 500 with a traceback."""

    def render(self, content: Any) -> bytes:
        try:
            return pydantic_core.to_json(content, inf_nan_mode="null")
        except pydantic_core.PydanticSerializationError:  # rare: the walk only when the fast write refused
            return pydantic_core.to_json(utf8_strings(content), inf_nan_mode="null")


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    all_headers = dict(headers or {})
    if retry_after is not None:
        # Retry-After takes whole seconds; round up so a client never comes back too early.
        all_headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return Utf8JSONResponse(
        {"error": {"code": code, "message": message, **(extra or {})}, "detail": message},
        status_code=status,
        headers=all_headers,
    )

