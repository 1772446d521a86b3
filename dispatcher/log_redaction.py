"""Keep credentials out of debug logs that third-party libraries write.

With LOG_LEVEL=debug, the websockets library that uvicorn serves the bot channel with logs every
handshake header ("< authorization: Bearer …") to `uvicorn.error`. This filter blanks the value
of credential headers in such records, wherever they come from.
"""

from __future__ import annotations

import logging

from dispatcher.log_text import shown

ESCAPED_LIMIT = 4096  # escaped, not cut short: a provider's message is the operator's clue
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class RedactCredentialHeaders(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], "[redacted]")
        return True


class EscapeControlCharacters(logging.Filter):
    """Every value formatted into a record is one line (dispatcher/log_text.py): a value that
    someone else chose (a bot's hello, a provider's message) cannot forge a record below it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(shown(a, ESCAPED_LIMIT) if isinstance(a, str | BaseException) else a
                                for a in record.args)
        return True


def install() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())
    for name in ("uvicorn.error", "websockets", "websockets.server", "websockets.client"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentialHeaders) for f in logger.filters):
            logger.addFilter(RedactCredentialHeaders())
