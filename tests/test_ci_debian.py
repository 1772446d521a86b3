"""CI's Debian installs (.ci/debian.sh) wait for another apt instead of failing on its lock: on a
fresh machine, unattended upgrades or a second CI run hold the dpkg lock, and a plain `apt-get
install` gives up at once (exit 100). The lock is held here for real, as apt takes it (fcntl), while
the install of a package already installed runs."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DPKG_LOCK = Path("/var/lib/dpkg/lock-frontend")


def test_an_install_waits_for_the_dpkg_lock_another_apt_holds() -> None:
    if shutil.which("apt-get") is None or not DPKG_LOCK.exists():
        pytest.skip("not a Debian machine (no apt-get, no dpkg lock)")
    if os.geteuid() != 0:
        pytest.skip("apt-get install needs root")
    lock = os.open(DPKG_LOCK, os.O_RDWR)
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX)  # another apt, mid-install
        install = subprocess.Popen(["bash", "-c", "source .ci/debian.sh && apt_install --no-install-recommends bash"],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert install.stdout is not None and install.stderr is not None
        said = install.stdout.readline()  # what apt says while it waits, or nothing once it gave up
        assert said.startswith("Waiting for cache lock"), (said, install.wait(60), install.stderr.read())
    finally:
        os.close(lock)  # the other apt is done
    assert install.wait(120) == 0, install.stderr.read()
