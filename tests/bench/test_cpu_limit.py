"""bench/cpu_limit.py holds a process as a container's limits would: a spinning process in a group of
0.05 CPU is throttled by the kernel, and the group is gone afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.cpu_limit import LimitUnavailable, limited, throttled_seconds


def test_a_spinning_process_held_to_a_twentieth_of_a_core_is_throttled() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        try:
            with limited(spinner.pid, cpus=0.05, memory_mib=256, name="voicefleet-test"):
                group = open(f"/proc/{spinner.pid}/cgroup").read()
                assert "voicefleet-test" in group, group
                time.sleep(1.0)  # twenty periods: it wants all of each, the quota gives 5 ms
                assert throttled_seconds(spinner.pid) > 0
        except LimitUnavailable as error:
            pytest.skip(str(error))
        assert "voicefleet-test" not in open(f"/proc/{spinner.pid}/cgroup").read()  # back in its first group
    finally:
        spinner.kill()
        spinner.wait()
