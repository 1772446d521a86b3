"""`python -m dispatcher` serves with the collector set for a server (dispatcher/serving/collector.py):
what it built before serving frozen, the young generation's threshold raised."""

from __future__ import annotations

import os
import subprocess
import sys

from dispatcher.serving.collector import YOUNG_THRESHOLD

# The dispatcher's own main, with the server's run replaced by a report of the collector's settings.
SCRIPT = """
import gc, sys
import dispatcher.__main__ as entry
entry.DrainingServer.run = lambda self, sockets: print(gc.get_threshold()[0], gc.get_freeze_count())
sys.exit(entry.main(["--port", "0"]))
"""


def test_the_dispatcher_serves_with_its_startup_frozen_and_a_high_young_threshold(tmp_path) -> None:
    env = {**os.environ, "MACHINES": "local", "RESERVE_MAX_IDLE": "0", "LOG_LEVEL": "warning", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60,
                         cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-2000:]
    threshold, frozen = map(int, out.stdout.split()[-2:])
    assert threshold == YOUNG_THRESHOLD
    assert frozen > 10_000  # the app and its imports, not a handful of objects
