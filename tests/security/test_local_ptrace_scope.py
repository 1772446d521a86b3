"""Finding: without Landlock, a bot of the same user could ptrace a young sibling (attach in its
first milliseconds, before it is non-dumpable) and inject `write(BOT_IDENTITY_FD, <its own nonce>)`:
the kernel attested the victim's pid, so the attacker dialled with the victim's credential, was
welcomed and sent its session's `assign`, the caller's body in it. Only Yama's `ptrace_scope`
stands in the way there, and the dispatcher started without a word about it.

Against `python -m dispatcher` as on a kernel without Landlock (the launcher's check forced off,
tests/security/without_landlock.py), with Yama's setting read from a file the test writes: where
`ptrace_scope` is below what keeps siblings apart (absent, or 0; 3 for a dispatcher run as root),
it says so at start-up, once, as an error naming the setting; where it is enough, it does not.
Run as root, the error's first advice is to run as an ordinary user: the 3 root would need cannot be
lowered until the host reboots, and stops gdb and strace on the whole host."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from dispatcher.machines.local import isolation
from tests.security.conftest import WAIT
from tests.support.processes import run_dispatcher

LAUNCHER = "tests.security.without_landlock"
ENV = {"RESERVE_MAX_IDLE": "0", "DISPATCHER_API_KEYS": "ptrace-scope-key-0123456789abcdef"}
TRACE_WARNING = "local bots can trace each other"
# Yama's 1 keeps a sibling from attaching; bots started as root hold CAP_SYS_PTRACE, which only 3 stops.
NEEDED = 3 if os.geteuid() == 0 else 1


@pytest.mark.parametrize("scope", ["absent", "below", "enough"])
def test_a_dispatcher_without_landlock_says_at_start_when_bots_can_trace_each_other(
    scope: str, tmp_path: Path,
) -> None:
    yama = tmp_path / "ptrace_scope"
    if scope != "absent":
        yama.write_text(f"{NEEDED - (scope == 'below')}\n")
    launcher = (sys.executable, "-m", LAUNCHER, str(yama))
    with run_dispatcher(tmp_path, ENV, ready_timeout=WAIT, command_prefix=launcher) as running:
        log = running.log()
    assert "without a Landlock domain" in log  # control: the launcher ran it as without Landlock
    errors = [line for line in log.splitlines() if TRACE_WARNING in line]
    if scope == "enough":
        assert errors == [], errors
    else:
        assert len(errors) == 1, log[-3000:]
        assert "kernel.yama.ptrace_scope" in errors[0] and "LOCAL_BOT_ISOLATION=required" in errors[0]
        assert ("absent" in errors[0]) == (scope == "absent")


@pytest.mark.parametrize("euid", [0, 1000])
def test_the_error_puts_an_ordinary_user_before_the_one_way_setting_root_would_need(
    euid: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    yama = tmp_path / "ptrace_scope"
    yama.write_text("0\n")
    monkeypatch.setattr(isolation, "YAMA_PTRACE_SCOPE", str(yama))
    monkeypatch.setattr(isolation.landlock, "abi_version", lambda: 0)
    monkeypatch.setattr(isolation.os, "geteuid", lambda: euid)
    with caplog.at_level(logging.ERROR, logger=isolation.log.name):
        isolation.BotIsolation.for_this_host("auto")
    [error] = [record.getMessage() for record in caplog.records if TRACE_WARNING in record.getMessage()]
    if euid == 0:
        ordinary = error.find("ordinary (non-root) user")
        one_way = error.find("cannot be lowered again until the host reboots")
        assert 0 <= ordinary < one_way, error  # the user first, the one-way switch after, and why
        assert "gdb, strace" in error and "whole host" in error
    else:
        assert "kernel.yama.ptrace_scope=1" in error and "reboot" not in error  # 1 is enough, and not one-way
