"""A local bot is spawned with nothing but `exec` in the dispatcher's forked child.

The dispatcher has threads (an OTLP gRPC exporter's among them), and Python code run between fork
and exec in a threaded process (a `preexec_fn`) ran gRPC's fork handlers half-done: the bot died of
SIGSEGV or a failed gRPC check before it started, a few times in a hundred starts with spans being
exported. The bot starts as dispatcher/machines/local/isolated_exec.py, which sets up the
parent-death signal and the Landlock domain in a process of its own, then becomes the bot. Python's
`os.register_at_fork` hooks run in a child exactly when Python code runs there before exec, so a
hook that writes is the probe; a plain `preexec_fn` spawn is the control that it fires.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dispatcher.machines.base import LaunchSpec, MachinesError
from dispatcher.machines.local import landlock
from dispatcher.machines.local.provider import LocalMachines, LocalSettings

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import asyncio, json, os, subprocess, sys
    from pathlib import Path
    from dispatcher.machines.base import LaunchSpec
    from dispatcher.machines.local.provider import LocalMachines, LocalSettings

    report = Path(sys.argv[1])
    hook_read, hook_write = os.pipe()
    os.set_blocking(hook_read, False)
    os.register_at_fork(after_in_child=lambda: os.write(hook_write, b"x"))

    def fired() -> int:
        try:
            return len(os.read(hook_read, 1024))
        except BlockingIOError:
            return 0

    # What the bot reads of itself as its first act: pid, parent-death signal, no_new_privs, and
    # whether it may signal its parent (a Landlock domain of ABI >= 6 scopes signals).
    probe = (
        "import ctypes, json, os, sys\\n"
        "libc = ctypes.CDLL(None, use_errno=True)\\n"
        "sig = ctypes.c_int(0); libc.prctl(2, ctypes.byref(sig), 0, 0, 0)\\n"
        "try:\\n    os.kill(os.getppid(), 0); signal_parent = 'allowed'\\n"
        "except PermissionError:\\n    signal_parent = 'PermissionError'\\n"
        "out = {'pid': os.getpid(), 'pdeathsig': sig.value, 'no_new_privs': libc.prctl(39, 0, 0, 0, 0),"
        " 'signal_parent': signal_parent}\\n"
        f"open({str(report)!r}, 'w').write(json.dumps(out))\\n"
    )

    async def main() -> dict:
        machines = LocalMachines(LocalSettings(bot_command=(sys.executable, "-c", probe), stop_grace_seconds=2))
        spec = LaunchSpec(session_id="0123456789abcdef01234567", body_digest="d" * 32, max_session_seconds=60)
        launched = await machines.launch(spec)
        for _ in range(600):
            if report.exists() and report.read_text():
                break
            await asyncio.sleep(0.05)
        await machines.aclose()
        bot = json.loads(report.read_text())
        return {"hook_in_bot_spawn": fired(), "bot": bot, "launched_pid": machines._bots[spec.session_id].pid}

    result = asyncio.run(main())
    subprocess.run(["/bin/true"], preexec_fn=lambda: None, check=True)  # the control: Python in the child
    result["hook_in_control"] = fired()
    print(json.dumps(result))
""")


def test_no_python_runs_in_the_forked_child_yet_the_bot_has_its_signal_and_domain(tmp_path: Path) -> None:
    script = tmp_path / "spawn.py"
    script.write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "bot.json")], cwd=ROOT, capture_output=True,
                         text=True, timeout=90, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["hook_in_control"] == 1  # the probe sees Python run in a forked child
    assert result["hook_in_bot_spawn"] == 0, "Python ran between the dispatcher's fork and exec"
    bot = result["bot"]
    assert bot["pid"] == result["launched_pid"]  # the launcher became the bot: its launch socket proves it
    assert bot["pdeathsig"] == 15  # SIGTERM when the dispatcher dies, kept across the exec
    abi = landlock.abi_version()
    assert bot["no_new_privs"] == (1 if abi >= 1 else 0)  # entering a domain needs no_new_privs
    if abi >= landlock.SCOPES_ABI:
        assert bot["signal_parent"] == "PermissionError"  # its own domain: it may not signal the dispatcher


async def refusal(command: tuple[str, ...]) -> MachinesError:
    """The error a start of a bot running `command` gets."""
    machines = LocalMachines(LocalSettings(bot_command=command))
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(LaunchSpec(session_id="1" * 24, body_digest="d" * 32, max_session_seconds=60))
    finally:
        await machines.aclose()
    assert refused.value.reason == "local_rejected"
    return refused.value


async def test_a_bot_program_missing_from_path_is_refused_with_its_name() -> None:
    refused = await refusal(("no-such-bot-program-here", "-m", "bot"))
    assert "no-such-bot-program-here: No such file or directory" in str(refused)


async def test_a_bot_program_that_cannot_run_is_refused_with_the_kernels_reason(tmp_path: Path) -> None:
    program = tmp_path / "bot"
    program.write_text("#!/bin/sh\nexit 0\n")  # not executable
    refused = await refusal((str(program),))
    assert f"{program}: Permission denied" in str(refused)


async def test_a_launcher_that_fails_before_the_exec_is_the_starts_error_not_a_running_bot() -> None:
    # An environment the kernel cannot hold (a NUL in a value) fails in the launcher, after the spawn.
    machines = LocalMachines(LocalSettings(bot_command=(sys.executable, "-c", "pass")))
    machines._environment = lambda spec: {"PATH": os.defpath, "BROKEN": "a\0b"}  # type: ignore[method-assign]
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(LaunchSpec(session_id="3" * 24, body_digest="d" * 32, max_session_seconds=60))
        assert refused.value.reason == "local_rejected"
        assert "its launcher failed (ValueError)" in str(refused.value)
        assert await machines.list() == []
    finally:
        await machines.aclose()


async def test_a_start_cancelled_while_its_launcher_runs_leaves_neither_a_launcher_nor_a_starting_bot() -> None:
    machines = LocalMachines(LocalSettings(bot_command=(sys.executable, "-c", "import time; time.sleep(60)")))
    spec = LaunchSpec(session_id="4" * 24, body_digest="d" * 32, max_session_seconds=60)
    launching = machines._launched.launching

    def cancelled_once_spawned(*grant: str) -> Any:  # the start is cancelled right after its launcher exists
        launch_socket = launching(*grant)
        launched = launch_socket.launched

        def and_cancelled(pid: int) -> None:
            launched(pid)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()

        launch_socket.launched = and_cancelled  # type: ignore[method-assign]
        return launch_socket

    machines._launched.launching = cancelled_once_spawned  # type: ignore[method-assign]
    try:
        with pytest.raises(asyncio.CancelledError):
            await machines.launch(spec)
        assert await machines.list() == []  # not left STARTING with no process
        process = machines._bots[spec.session_id].process
        assert process is None  # never handed over as the bot's
        assert machines._launched._sockets == {}  # its launch socket forgotten
    finally:
        await machines.aclose()


async def test_a_launcher_past_its_deadline_is_killed_and_the_start_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatcher.machines.local import spawn

    monkeypatch.setattr(spawn, "LAUNCH_SECONDS", 0.0)  # no interpreter starts within it
    refused = await refusal((sys.executable, "-c", "import time; time.sleep(60)"))
    assert "its launcher did not start it within 0s" in str(refused)
