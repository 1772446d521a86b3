"""Starts a local bot through isolated_exec.py and tells whether it became the bot.

The dispatcher's forked child only `exec`s the launcher (no `preexec_fn`: Python code in the
forked child of a threaded process is unsafe). The launcher's environment is empty; the bot's
argv and environment go over a socketpair, and the launcher closes its end by exec'ing the bot:
end of file there means the bot runs, anything else is the launcher's reason for refusing.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import signal
import socket
from collections.abc import Callable, Mapping

from dispatcher.machines.local.isolated_exec import launcher_argv
from dispatcher.machines.local.isolation import BotIsolation

# How long a launcher may take to exec the bot: an interpreter start, tens of milliseconds on an
# idle machine, seconds on a thrashing one. Past it, the launcher is killed and the start refused.
LAUNCH_SECONDS = 30.0


class BotRefused(Exception):
    """The bot could not be started (its program, the kernel's refusal): the process is reaped."""


async def spawn_bot(isolation: BotIsolation, command: list[str], env: Mapping[str, str], *, keep_fd: int,
                    spawned: Callable[[int], None]) -> asyncio.subprocess.Process:
    """`command` with `env`, its stdout and stderr piped, in a session of its own, holding `keep_fd`
    (at the same number) and no other descriptor of this process. `spawned(pid)` runs before the
    bot can: the pid is the bot's own after the exec."""
    ours, theirs = socket.socketpair()
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *launcher_argv(os.getpid(), isolation.abi, theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,  # the bot's event lines; its logs go to stderr
                stderr=asyncio.subprocess.PIPE,
                env={},  # the bot's own comes over the channel: no credential in the launcher's environ
                start_new_session=True,  # Ctrl-C in the terminal reaches the dispatcher, which stops bots
                pass_fds=(keep_fd, theirs.fileno()),
            )
        finally:
            theirs.close()
        spawned(process.pid)
        try:
            reason = await asyncio.wait_for(_handshake(ours, command, env), LAUNCH_SECONDS)
        except TimeoutError:
            reason = f"its launcher did not start it within {LAUNCH_SECONDS:g}s"
        except BaseException:  # cancelled (the dispatcher stops): no launcher is left behind, nor a zombie
            await _reap(process)
            raise
        if reason:
            await _reap(process)
            raise BotRefused(reason)
        return process
    finally:
        ours.close()


async def _handshake(channel: socket.socket, command: list[str], env: Mapping[str, str]) -> str:
    loop = asyncio.get_running_loop()
    channel.setblocking(False)
    with contextlib.suppress(OSError):  # a launcher that died first: end of file, and its exit is the bot's
        await loop.sock_sendall(channel, marshal.dumps((command, dict(env))))
        channel.shutdown(socket.SHUT_WR)
    said = bytearray()
    with contextlib.suppress(OSError):
        while chunk := await loop.sock_recv(channel, 4096):
            said += chunk
    return said.decode(errors="replace")


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Killed, waited for, and its pipes read to their end: nothing of it outlives this call."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.communicate()
