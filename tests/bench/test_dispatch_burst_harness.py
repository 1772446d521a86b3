"""The burst harness measures starts, not failures: its fast fakes serve every call each
provider's `POST /start?wait=started` makes (a new call the fakes lack once made every GCE start
a 502, and the table printed 0 starts/s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.dispatch_burst import our_arm, run_arm, wait_until_answering
from bench.fakes_process import FakesProcess
from tests.fakes.server import free_port


@pytest.mark.parametrize("provider", ["fly", "gce", "ecs"])
def test_each_provider_starts_sessions_against_the_fast_fakes(provider: str) -> None:
    with FakesProcess(latency=0.001) as fakes:
        port = free_port()
        arm = our_arm(provider, fakes.url, port, wait=True, server="dispatcher")
        sequential, burst = run_arm(arm, fakes, port, sequential=3, burst=6, concurrency=3)
    assert (sequential.errors, burst.errors) == (0, 0)
    assert burst.calls >= 2  # the room and the machine, at least: the fakes saw the starts


def test_a_server_without_healthz_counts_as_up_once_it_answers(tmp_path) -> None:
    # The Fly example's bot_runner.py answers /healthz with 404: it is up, not starting.
    port = free_port()
    log = (tmp_path / "log").open("w+")
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_until_answering("no /healthz", port, server, log, seconds=10)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
