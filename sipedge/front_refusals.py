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
a line that does not start as Kamailio's own entries do (a request's text) behind `kamailio: | `, so
none reads as a line of the edge's own."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets

from sipedge.log_relay import LogRelay
from sipedge.refusal_log import RefusalLog
from sipedge.stream_lines import lines

log = logging.getLogger("sipedge")

MARK = "sipedge-front-refused"
XLOG_PREFIX = "<script>: "  # what Kamailio's xlog writes before a line of the config's (its `prefix` default)
# The start of each of Kamailio's own entries with -E and log_stderror: its process's rank, pid and level.
ENTRY = re.compile(rb" *\d+\(\d+\) [A-Z]+: ")
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


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


def relayed(text: bytes) -> bytes:
    """`text` (one line of Kamailio's log) as the edge's log carries it: behind `kamailio: `, a line that is
    no entry of Kamailio's own (a request's text its parser logged) behind `kamailio: | `, control characters
    escaped."""
    body = CONTROL.sub(lambda found: b"\\x%02x" % found[0][0], text.rstrip(b"\r\n"))
    return (b"kamailio: " if ENTRY.match(body) else b"kamailio: | ") + body + b"\n"


async def read_front_log(stream: asyncio.StreamReader, refusals: RefusalLog, mark: str,
                         relay: LogRelay | None = None) -> None:
    """Kamailio's standard error until it closes: refusals counted, the rest passed on to `relay` (none:
    dropped). Reads on whatever one line holds: a reader that stopped would leave Kamailio blocked on its
    next log write."""
    said = False
    async for text in lines(stream):
        try:
            if not counted(text.decode(errors="replace"), refusals, mark) and relay is not None:
                relay.put(relayed(text))
        except Exception:  # noqa: BLE001 - the next line must still be read
            if not said:
                log.exception("sipedge: a line of Kamailio's log could not be read (its later errors are not "
                              "logged)")
                said = True
