"""Kamailio's own refusals, counted with the workers' (sipedge/refusal_log.py): a request the front answers
itself (a stranger's INVITE 403, a rate limit's 503, a malformed request) or drops (a flooding source, once
pike first finds it) never reaches a worker, so no worker counts it. The front's config writes each as one
line on its standard error (`line`), which the supervisor reads (`read_front_log`): those lines counted, in
the edge's bounded log, never relayed one by one; Kamailio's other lines passed on as they come.

A line names nothing the request's sender wrote (no Call-ID, URI or method): only the answer, the source
address Kamailio saw and the config's fixed reason, so a sender cannot forge one inside another line's text.
"""

from __future__ import annotations

import asyncio
import re
import sys

from sipedge.refusal_log import RefusalLog

MARK = "sipedge-front-refused"
# The end of Kamailio's line (its pid, level and xlog's prefix before): the answer (a status, `sanity`: the
# sanity module's own reply, `dropped`: pike's), the source address and the config's reason.
LINE = re.compile(MARK + r" (\d{3}|sanity|dropped) from ([0-9A-Fa-f.:\[\]]{1,64}): ([a-z0-9 ./,'-]{1,120})$")
XLOG_PREFIX = "<script>: "  # what Kamailio's xlog writes before a line of the config's (its `prefix` default)


def line(answer: str, why: str) -> str:
    """The front's config line (Kamailio's xlog) for one refusal: `answer` a status or `sanity`/`dropped`,
    `why` a fixed reason (no request text)."""
    if not LINE.fullmatch(f"{MARK} {answer} from 0.0.0.0: {why}"):
        raise ValueError(f"a front refusal's line would not be read back: {answer!r}, {why!r}")
    return f'xlog("L_WARN", "{MARK} {answer} from $si: {why}\\n");'


def counted(text: str, refusals: RefusalLog) -> bool:
    """Counts `text` (one line of Kamailio's log) in `refusals` if it is a front refusal's; whether it was."""
    text = text.rstrip("\r\n")
    found = LINE.search(text)
    if found is None or not text[:found.start()].endswith(XLOG_PREFIX):
        return False
    answer, host, why = found.groups()
    refusals.front_refused(host, int(answer) if answer.isdigit() else answer, why)
    return True


async def read_front_log(stream: asyncio.StreamReader, refusals: RefusalLog) -> None:
    """Kamailio's standard error until it closes: refusals counted, the rest passed on to ours."""
    while text := await stream.readline():
        if not counted(text.decode(errors="replace"), refusals):
            sys.stderr.buffer.write(text)
            sys.stderr.flush()
