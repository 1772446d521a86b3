"""A process's CPU per thread, read from /proc/<pid>/task/*/stat: to tell which of the SIP edge's
threads (the event loop, PJSIP's media clock, its SIP and RTP threads) a call's CPU goes to. PJSIP's
clock thread lives only while a call has media, so the threads are read every SAMPLE_SECONDS and
each one's last reading kept: one that ended is counted up to then."""

from __future__ import annotations

import os
import threading

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.5


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user and system) of each live thread of `pid`, by "name/tid" ("loop" for the main
    thread, where the edge runs its event loop); a thread that ends while read is left out."""
    seconds: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = "loop" if tid == str(pid) else text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(") ", 1)[1].split()
        seconds[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


class ThreadSampler:
    """Reads `pid`'s threads until stopped; `shares` then gives each thread's share of a core."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.first = thread_cpu(pid)
        self.last = dict(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.last.update(thread_cpu(self._pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(thread_cpu(self._pid))

    def shares(self, wall_seconds: float) -> dict[str, float]:
        """Each thread's share of one core (%) over `wall_seconds`, highest first; a thread born since the
        first reading counts from zero."""
        shares = {name: (seconds - self.first.get(name, 0.0)) / wall_seconds * 100
                  for name, seconds in self.last.items()}
        return dict(sorted(shares.items(), key=lambda item: -item[1]))
