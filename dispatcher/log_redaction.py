"""Keep credentials out of debug logs that third-party libraries write.

With LOG_LEVEL=debug, the websockets library that uvicorn serves the bot channel with logs every
handshake header ("< authorization: Bearer …") to `uvicorn.error`. This filter blanks the value
of credential headers in such records, wherever they come from.
"""

from __future__ import annotations

import logging

SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class RedactCredentialHeaders(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], "[redacted]")
        return True


def install() -> None:
    for name in ("uvicorn.error", "websockets", "websockets.server", "websockets.client"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentialHeaders) for f in logger.filters):
            logger.addFilter(RedactCredentialHeaders())
