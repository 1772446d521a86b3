"""`python -m sipedge.front_watch`: ends the edge's Kamailio front when the edge dies, however it dies
(docs/sip.md#supervision). The kernel's parent-death signal, which the supervisor also sets, does not reach a
Kamailio started as root: it is cleared as Kamailio drops to nobody. So this process, the edge's child, reads the
id of each Kamailio process group the edge starts on its standard input, a pipe only the edge writes; the pipe's
end is the edge's exit (the kernel closes it however the edge ends), and the last group named is then ended
(SIGTERM, on which Kamailio's main process ends its children; SIGKILL after a bound). After an orderly stop the
edge has ended that group itself and this process finds nothing left."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys

from sipedge.front_leftover import end_group, group_processes

log = logging.getLogger("sipedge")
CLOSE_SECONDS = 10.0


class FrontWatch:
    """The edge's side: starts the watching process, names each new Kamailio group to it, and ends it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "sipedge.front_watch"], stdin=subprocess.PIPE)

    def tell(self, group: int) -> None:
        """Kamailio now runs as process group `group`."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(f"{group}\n".encode())
            self._process.stdin.flush()
        except OSError as error:  # it exited: the record file is what is left (sipedge/front_leftover.py)
            log.error("sipedge: the front's watcher no longer reads (%s); a front left by a killed edge is ended "
                      "at the next start", error)

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


def main() -> None:
    """The watching process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches the edge, which stops the front itself
    group: int | None = None
    for line in sys.stdin:
        with contextlib.suppress(ValueError):
            group = int(line)
    if group is None:
        return
    last = group
    if group_processes(last):
        print(f"sipedge: the edge is gone; ending its Kamailio front (group {last})", file=sys.stderr, flush=True)
        end_group(last, lambda: bool(group_processes(last)))


if __name__ == "__main__":
    main()
