"""Kamailio's own refusals, counted with the workers' (sipedge/refusal_log.py), and its other log lines passed on.

A request the front answers or drops itself never reaches a worker; the front's config writes each as one xlog
entry carrying a per-start mark (`line`, `new_mark`), which `read_front_log` counts. Kamailio logs with its JSON
engine (`LOG_ENGINE`), so a sender's text stays escaped inside one entry and never starts a line of its own; an
entry is Kamailio's own only from one of its processes (`own`). Other lines are passed on, escaped and cut
(sipedge/log_line.py). The reasoning and the sources: docs/sip.md, "Kamailio's log carries a sender's text"."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sipedge.log_line import shown, text_of
from sipedge.log_relay import LogRelay
from sipedge.refusal_log import RefusalLog
from sipedge.stream_lines import cut_lines

log = logging.getLogger("sipedge")

MARK = "sipedge-front-refused"
# Kamailio's command-line option: its JSON log engine, each message's own trailing newline left out (`M`).
LOG_ENGINE = "--log-engine=json:M"
RECENT_SECONDS = 60.0  # how long a process seen in Kamailio's group is still told its own
RECENT_IDS = 4096  # at most so many remembered (Kamailio runs a few dozen processes)
_ENTRY_FIELDS = {"idx": int, "pid": int, "level": str, "module": str, "file": str, "line": int, "function": str,
                 "message": str}


@dataclass(frozen=True)
class Entry:
    """One entry of Kamailio's log, as its JSON log engine writes it."""
    idx: int  # its process's rank
    pid: int
    level: str
    module: str
    file: str
    line: int
    function: str
    message: str

    def text(self) -> str:
        """As Kamailio's plain log writes it: ` 1(8150) ERROR: <core> [core/receive.c:376]: receive_msg(): …`."""
        function = f"{self.function}(): " if self.function else ""
        return (f"{self.idx:2d}({self.pid}) {self.level}: <{self.module}> [{self.file}:{self.line}]: "
                f"{function}{self.message}")


def entry_of(text: str) -> Entry | None:
    """`text` (one line of Kamailio's standard error) as an entry of its JSON log engine's; None if it is none."""
    if not text.startswith("{"):
        return None
    try:
        fields = json.loads(text)
    except ValueError:  # a plain line starting with a brace, or an entry cut short
        return None
    if not isinstance(fields, dict) or any(type(fields.get(name)) is not kind for name, kind in _ENTRY_FIELDS.items()):
        return None
    return Entry(**{name: fields[name] for name in _ENTRY_FIELDS})


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


def counted(entry: Entry, refusals: RefusalLog, mark: str) -> bool:
    """Counts `entry` (one of Kamailio's log) in `refusals` if it is a front refusal's (the config's xlog, with
    `mark`); whether it was."""
    found = _pattern(mark).fullmatch(entry.message.rstrip("\r\n"))
    if found is None or entry.module != "xlog":
        return False
    answer, host, why = found.groups()
    refusals.front_refused(host, int(answer) if answer.isdigit() else answer, why)
    return True


@dataclass(frozen=True)
class LogLine:
    """One line of Kamailio's standard error or output, read once: for its count and for the edge's log."""
    text: str  # without its newline (`text_of`)
    over: int  # more bytes of it cut off before it was read
    entry: Entry | None  # the entry of Kamailio's JSON engine it holds, if it is one


def read_line(raw: bytes, over: int = 0) -> LogLine:
    """`raw` (one line, `over` more bytes of it cut off) and the entry it holds. An entry cut short is read from
    its head (`_head_of`), so Kamailio's own long entry is still shown as its own."""
    text = text_of(raw.rstrip(b"\r\n"))
    return LogLine(text, over, _head_of(text) if over else entry_of(text))


def relayed(line: LogLine, own: Callable[[int], bool]) -> bytes:
    """`line` as the edge's log carries it: an entry of one of Kamailio's processes (`own`, given a process id)
    behind `kamailio: `, as its plain log shows it; any other line behind `kamailio: | `; escaped and cut
    (sipedge/log_line.py)."""
    if line.entry is not None and own(line.entry.pid):
        return shown(b"kamailio: ", line.entry.text(), line.over)
    return shown(b"kamailio: | ", line.text, line.over)


# The head of an entry as Kamailio's JSON engine writes it (src/core/dprint.c, `ksr_slog_json`): its fields in
# this order, Kamailio's own constants, then the message, whose every quote and backslash is escaped.
_HEAD = re.compile(r'\{ "idx": (-?\d{1,9}), "pid": (\d{1,9}), "level": "([A-Z0-9]{1,16})", "module": "([^"\\]{0,64})", '
                   r'"file": "([^"\\]{0,256})", "line": (\d{1,9}), "function": "([^"\\]{0,128})", '
                   r'(?:"logprefix": "(?:[^"\\]|\\.){0,1024}", )?"message": "')
_CUT_ESCAPE = re.compile(r'(?<!\\)((?:\\\\)*)\\(?:u[0-9A-Fa-f]{0,3})?$')  # an escape the cut split: dropped


def _head_of(text: str) -> Entry | None:
    """An entry cut short (`text`: its head) read from its fields and the message's head; None if it is none."""
    found = _HEAD.match(text)
    if found is None:
        return None
    rest = text[found.end():]
    if '"' in rest:  # a closing quote: no entry's head cut inside its message
        return None
    try:
        message = json.loads('"' + _CUT_ESCAPE.sub(r"\1", rest) + '"')
    except ValueError:
        return None
    idx, pid, level, module, file, number, function = found.groups()
    return Entry(int(idx), int(pid), level, module, file, int(number), function, message)


def in_group(group: int, clock: Callable[[], float] = time.monotonic) -> Callable[[int], bool]:
    """Whether a process id is one of process group `group`'s (Kamailio's own, which it runs in alone), or was
    within RECENT_SECONDS, or is no process at all: a child that wrote its last entry and exited (at a stop, a
    crash) is still Kamailio's. Only Kamailio's processes hold its pipes and its entries cannot be forged, so
    only a process alive in another group (an id reused since) is told apart."""
    seen: dict[int, float] = {}

    def own(pid: int) -> bool:
        now = clock()
        for old in [old for old, at in seen.items() if now - at > RECENT_SECONDS]:
            del seen[old]
        if pid == group or pid in seen:
            return True
        try:
            if pid > 0 and os.getpgid(pid) == group:
                if len(seen) < RECENT_IDS:
                    seen[pid] = now
                return True
        except ProcessLookupError:  # gone: its last entry, still in the pipe
            return pid > 0
        except OSError:
            pass
        return False

    return own


async def read_front_log(stream: asyncio.StreamReader, refusals: RefusalLog, mark: str,
                         relay: LogRelay | None = None, own: Callable[[int], bool] = lambda _: False) -> None:
    """Kamailio's standard error until it closes: refusals counted, the rest passed on to `relay` (none:
    dropped), its entries told by `own` (`in_group`). Reads on whatever one line holds: a reader that stopped
    would leave Kamailio blocked on its next log write."""
    said = False
    async for raw, over in cut_lines(stream):
        try:
            read = read_line(raw, over)
            if read.entry is not None and not over and counted(read.entry, refusals, mark):
                continue
            if relay is not None:
                relay.put(relayed(read, own))
        except Exception:  # noqa: BLE001 - the next line must still be read
            if not said:
                log.exception("sipedge: a line of Kamailio's log could not be read (its later errors are not "
                              "logged)")
                said = True
