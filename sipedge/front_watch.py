"""`python -m sipedge.front_watch KAMAILIO`: ends the edge's Kamailio front when the edge dies, however it dies
(docs/sip.md#supervision). The kernel's parent-death signal, which the supervisor also sets, does not reach a
Kamailio started as root: it is cleared as Kamailio drops to nobody. So this process, started by the edge in a
session of its own (a hang-up of the edge's terminal or process group does not reach it), reads the record of each
Kamailio the edge starts (sipedge/front_leftover.py's FrontRecord, one JSON line) on its standard input, a pipe only
the edge writes, and "forget" once the edge has ended that front itself. The pipe's end is the edge's exit (the
kernel closes it however the edge ends), its only cue: it ignores SIGHUP, SIGINT and SIGTERM. The front last
recorded is then ended (SIGTERM, on which Kamailio's main process ends its children; SIGKILL after a bound), only
while its group is still that Kamailio (front_leftover's live_members), checked before each signal."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
from dataclasses import asdict

from sipedge.front_leftover import FrontRecord, end_group, live_members

log = logging.getLogger("sipedge")
CLOSE_SECONDS = 10.0
FORGET = "forget"


class FrontWatch:
    """The edge's side: starts the watching process, tells it each new Kamailio, and ends it. A watcher that has
    exited on its own (killed by the OOM killer, or by hand) is started again at the next word to it."""

    def __init__(self, kamailio: str) -> None:
        self._kamailio = kamailio
        self._process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "sipedge.front_watch", self._kamailio], stdin=subprocess.PIPE,
                                start_new_session=True)

    def tell(self, record: FrontRecord) -> None:
        """Kamailio now runs as `record` says."""
        self._send(json.dumps(asdict(record)))

    def forget(self) -> None:
        """The edge has ended its front itself: nothing is left to end, whoever takes its group's id."""
        self._send(FORGET)

    def _send(self, line: str) -> None:
        if self._process.poll() is None and self._write(line):
            return
        log.error("sipedge: the front's watcher exited (%s); starting another", self._process.returncode)
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        self._process = self._start()
        if not self._write(line):  # the record file is what is left (sipedge/front_leftover.py)
            log.error("sipedge: the front's watcher does not read; a front left by a killed edge is ended at the "
                      "next start")

    def _write(self, line: str) -> bool:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(f"{line}\n".encode())
            self._process.stdin.flush()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Once the edge has stopped the front itself: the watcher finds nothing to end, and exits."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _told(line: str, last: FrontRecord | None) -> FrontRecord | None:
    """The front to end once the edge is gone, after `line`."""
    if line.strip() == FORGET:
        return None
    with contextlib.suppress(ValueError):
        if (record := FrontRecord.read(json.loads(line))) is not None:
            return record
    _say(f"sipedge: the front's watcher was told no record ({line.strip()[:80]!r}); ignored")
    return last


def _say(text: str) -> None:
    """A line on standard error, which may be a hung-up terminal's: its failure never keeps the front running."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)


def main() -> None:
    """The watching process."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m sipedge.front_watch KAMAILIO (the path of the kamailio it runs)")
    kamailio = sys.argv[1]
    record: FrontRecord | None = None
    for line in sys.stdin:
        record = _told(line, record)
    if record is None:
        return
    last = record
    if live_members(last, kamailio):
        _say(f"sipedge: the edge is gone; ending its Kamailio front (group {last.group})")
        try:
            end_group(last.group, lambda: live_members(last, kamailio))
        except OSError as error:
            _say(f"sipedge: the edge is gone, and its front is not: {error}")
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
