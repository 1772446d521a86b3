"""What crosses a WebSocket never reaches a log, at any level.

The websockets library logs every handshake line and header and every frame (its first and last
characters) at DEBUG, through whichever logger it was given: `websockets.client` for the bot's
channel, `uvicorn.error` for the dispatcher's side of it and of the carriers' sockets. Those lines
carry credentials (`Authorization`, `X-Twilio-Signature`), one-time paths, the session's `assign`
(the caller's `body`, a Daily token) and carriers' call data. Both ends of the channel speak it over
websockets, so both install this filter on the loggers it writes through: its wire records (the
ones it writes as `< …` and `> …`) are dropped, and its state and error lines (`= connection is
OPEN`, `! …`, `x closing …`) still appear.
"""

from __future__ import annotations

import logging
import os

WEBSOCKETS_LOGGERS = ("websockets", "websockets.client", "websockets.server")
_LIBRARY = f"{os.sep}websockets{os.sep}"
_WIRE_PREFIXES = ("<", ">")


def is_wire_record(record: logging.LogRecord) -> bool:
    """A line the websockets library wrote about bytes on the wire (request and status lines,
    headers, bodies, frames), told by where it was written and by the library's own markers."""
    return _LIBRARY in record.pathname and isinstance(record.msg, str) and record.msg.startswith(_WIRE_PREFIXES)


class DropWireRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_wire_record(record)


def keep_wire_out_of(*logger_names: str) -> None:
    """Installs the filter on each logger (once): a logger's filters see the records it writes itself."""
    for name in (*WEBSOCKETS_LOGGERS, *logger_names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropWireRecords) for f in logger.filters):
            logger.addFilter(DropWireRecords())
