"""A local bot's stderr, forwarded into the dispatcher's log one line at a time, with its session.

Each line becomes a record of the `dispatcher.bot` logger at the bot's own level
(dispatcher/machines/local/bot_lines.py) whose `session_id` is the bot's session (a reserve bot's id
until a claim gives it one), so `LOG_FORMAT=json` puts it on the line, and the text format prefixes
it; a bot's JSON line gives its message, machine and traceback to the dispatcher's own JSON line.
A line is escaped (control characters) and cut at `MAX_LINE_BYTES`, and the
stream is read as fast as the bot writes: a bot never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dispatcher.machines.local.bot_lines import BotLineReader
from dispatcher.observability.log_redaction import mask_secret_paths
from dispatcher.observability.log_text import shown

log = logging.getLogger("dispatcher.bot")
MAX_LINE_BYTES = 16 * 1024  # a traceback's line is far shorter; a runaway line is cut, not buffered


async def forward_bot_logs(stream: asyncio.StreamReader, session: Callable[[], str]) -> None:
    reader = BotLineReader()
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line past the reader's limit: take what is buffered, as a line of its own
            raw = await stream.read(MAX_LINE_BYTES)
        if not raw:
            return
        text = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\n")
        session_id = session()
        line = reader.read(text)
        exception = line.exception and mask_secret_paths(line.exception)  # as the record's own text is
        extra = {"session_id": session_id, "machine_id": line.machine_id, "bot_exception": exception}
        log.log(line.level, "[%s] %s", session_id, shown(line.message, MAX_LINE_BYTES), extra=extra)
