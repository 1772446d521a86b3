"""The error an answer of the dispatcher carries (dispatcher/errors.py writes it as JSON): apart from
FastAPI, so that what raises it (the providers' outbound calls) imports no web framework, and neither
does the configuration check that reads their settings (`voicefleet config check`)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}
