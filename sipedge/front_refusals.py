"""Kamailio's own refusals, counted with the workers' (sipedge/refusal_log.py): a request the front answers
itself (a stranger's INVITE 403, a rate limit's 503, a malformed request) or drops (a flooding source, once
pike first finds it) never reaches a worker, so no worker counts it. The front's config writes each as one
line on its standard error (`line`), which the supervisor reads (`read_front_log`): those lines counted, in
the edge's bounded log, never relayed one by one; Kamailio's other lines passed on (sipedge/log_relay.py).

Kamailio's parser logs a malformed request's text itself, newlines and all, so a sender can write whole
lines into that log. A refusal's line carries a mark made at each start (`new_mark`), written into the
private kamailio.cfg and sent to no peer: a line without it is never counted, whatever it looks like. Nor
does a line name anything the sender wrote (no Call-ID, URI or method): only the answer, the source
address Kamailio saw and the config's fixed reason. Every other line is passed on behind `kamailio: `,
a line that is not an entry of Kamailio's own behind `kamailio: | `, so none reads as a line of the
edge's own. An entry starts with its process's rank and id: a line that starts so with an id that is not
one of Kamailio's processes (a request's text laid out as an entry) is no entry. Each line is escaped and
cut to one line of at most 4 KiB (sipedge/log_line.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
from collections.abc import Callable

from sipedge.log_line import shown, text_of
from sipedge.log_relay import LogRelay
from sipedge.refusal_log import RefusalLog
from sipedge.stream_lines import cut_lines

log = logging.getLogger("sipedge")

MARK = "sipedge-front-refused"
XLOG_PREFIX = "<script>: "  # what Kamailio's xlog writes before a line of the config's (its `prefix` default)
# The start of each of Kamailio's own entries with -E and log_stderror: its process's rank, pid and level.
ENTRY = re.compile(r" *[0-9]+\(([0-9]{1,10})\) [A-Z]+: ")


def new_mark() -> str:
    """This start's mark of the front's refusal lines: the kamailio.cfg's and the supervisor's alone."""
    return secrets.token_hex(16)


@functools.lru_cache(maxsize=4)
def _pattern(mark: str) -> re.Pattern[str]:
    # The end of Kamailio's line (its pid, level and xlog's prefix before): the mark, the answer (a status,
    # `sanity`: the sanity module's own reply, `dropped`: pike's), the source address and the config's reason.
    return re.compile(re.escape(f"{MARK} {mark} ")
                      + r"(\d{3}|sanity|dropped) from ([0-9A-Fa-f.:\[\]]{1,64}): ([a-z0-9 ./,'-]{1,120})$")


def line(answer: str, why: str, mark: str) -> str:
    """The front's config line (Kamailio's xlog) for one refusal: `answer` a status or `sanity`/`dropped`,
    `why` a fixed reason (no request text), `mark` this start's (`new_mark`)."""
    if not re.fullmatch(r"[0-9a-f]{32}", mark) or not _pattern(mark).fullmatch(
            f"{MARK} {mark} {answer} from 0.0.0.0: {why}"):
        raise ValueError(f"a front refusal's line would not be read back: {answer!r}, {why!r}")
    return f'xlog("L_WARN", "{MARK} {mark} {answer} from $si: {why}\\n");'


def counted(text: str, refusals: RefusalLog, mark: str) -> bool:
    """Counts `text` (one line of Kamailio's log) in `refusals` if it is a front refusal's with `mark`; whether
    it was."""
    text = text.rstrip("\r\n")
    found = _pattern(mark).search(text)
    if found is None or not text[:found.start()].endswith(XLOG_PREFIX):
        return False
    answer, host, why = found.groups()
    refusals.front_refused(host, int(answer) if answer.isdigit() else answer, why)
    return True


def relayed(text: bytes, own: Callable[[int], bool], over: int = 0) -> bytes:
    """`text` (one line of Kamailio's log, `over` more bytes of it cut off) as the edge's log carries it: behind
    `kamailio: `, a line that is no entry of one of Kamailio's processes (`own`, given a process id) behind
    `kamailio: | `, escaped and cut (sipedge/log_line.py)."""
    body = text_of(text.rstrip(b"\r\n"))
    entry = ENTRY.match(body)
    return shown(b"kamailio: " if entry is not None and own(int(entry[1])) else b"kamailio: | ", body, over)


def in_group(group: int) -> Callable[[int], bool]:
    """Whether a process id is one of process group `group`'s (Kamailio's own, which it runs in alone)."""
    def own(pid: int) -> bool:
        if pid == group:
            return True
        with contextlib.suppress(OSError):  # gone since, or never there
            return pid > 0 and os.getpgid(pid) == group
        return False

    return own


async def read_front_log(stream: asyncio.StreamReader, refusals: RefusalLog, mark: str,
                         relay: LogRelay | None = None, own: Callable[[int], bool] = lambda _: False) -> None:
    """Kamailio's standard error until it closes: refusals counted, the rest passed on to `relay` (none:
    dropped), its entries told by `own` (`in_group`). Reads on whatever one line holds: a reader that stopped
    would leave Kamailio blocked on its next log write."""
    said = False
    async for text, over in cut_lines(stream):
        try:
            if not counted(text.decode(errors="replace"), refusals, mark) and relay is not None:
                relay.put(relayed(text, own, over))
        except Exception:  # noqa: BLE001 - the next line must still be read
            if not said:
                log.exception("sipedge: a line of Kamailio's log could not be read (its later errors are not "
                              "logged)")
                said = True
