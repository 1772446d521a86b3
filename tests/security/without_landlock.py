"""`python -m tests.security.without_landlock YAMA_FILE …`: runs `python -m dispatcher` in this process
as on a kernel without Landlock, reading Yama's `ptrace_scope` from YAMA_FILE (absent: no Yama).
What follows YAMA_FILE (run_dispatcher's own command) is ignored."""

from __future__ import annotations

import runpy
import sys

import dispatcher.machines.local.isolation as isolation
import dispatcher.machines.local.landlock as landlock

isolation.YAMA_PTRACE_SCOPE = sys.argv[1]
landlock.abi_version = lambda: 0
sys.argv = ["dispatcher"]
runpy.run_module("dispatcher", run_name="__main__", alter_sys=True)
