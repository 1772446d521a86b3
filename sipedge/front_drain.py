"""The front's own word of the edge's drain (docs/sip.md#draining): once the supervisor starts draining, Kamailio
answers each new INVITE `503` with Retry-After itself, so none reaches a draining worker; requests within a call
(a BYE, a re-INVITE) still reach theirs. The supervisor tells it by setting one entry of an htable (DRAIN_TABLE)
through Kamailio's own RPC: its ctl module on a Unix stream socket in the edge's private folder (0700, the edge
user's), the socket itself 0600 (the module's `mode`), so only root and the edge's user can reach it. No port,
no secret: the RPC's only argument is the entry's name. Debian's kamailio package carries the client, kamcmd,
beside Kamailio. Should the word not get through, the workers still answer 503 themselves (sipedge/edge.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

log = logging.getLogger("sipedge")

KAMCMD = "/usr/sbin/kamcmd"
CONTROL_SOCKET = "ctl.sock"  # in the front's private folder (sipedge/supervisor.py)
DRAIN_TABLE, DRAIN_KEY = "edge", "draining"
TELL_SECONDS = 2.0  # one RPC: Kamailio answers it at once, unless the host is very busy
TELL_TRIES = 3
TELL_BACKOFF_SECONDS = 0.5  # doubled after each failed try


def control_socket(folder: Path) -> Path:
    return folder / CONTROL_SOCKET


def control_params(folder: Path) -> str:
    """The kamailio.cfg's lines for the drain's flag: the ctl module on `folder`'s socket, 0600, and the table."""
    return (f'modparam("ctl", "binrpc", "unix:{control_socket(folder)}")\n'
            'modparam("ctl", "mode", 0600)\n'
            f'modparam("htable", "htable", "{DRAIN_TABLE}=>size=1;")')


def draining_condition() -> str:
    """A Kamailio condition: the supervisor has told the front the edge drains."""
    return f"$sht({DRAIN_TABLE}=>{DRAIN_KEY}) == 1"


async def tell_front_draining(folder: Path) -> bool:
    """Sets the front's drain flag through its control socket in `folder`; whether Kamailio took it. Each try is
    bounded (TELL_SECONDS), TELL_TRIES in all with a doubling pause; a failure is logged, never raised: the drain
    goes on, the workers answering 503 themselves."""
    argv = [KAMCMD, "-s", f"unix:{control_socket(folder)}", "htable.seti", DRAIN_TABLE, DRAIN_KEY, "1"]
    pause, said = TELL_BACKOFF_SECONDS, ""
    for attempt in range(1, TELL_TRIES + 1):
        try:
            process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                           stdout=asyncio.subprocess.PIPE,
                                                           stderr=asyncio.subprocess.STDOUT)
        except OSError as error:
            said = str(error)
        else:
            try:
                output, _ = await asyncio.wait_for(process.communicate(), TELL_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                said = f"no answer within {TELL_SECONDS:g} s"
            else:
                if process.returncode == 0:
                    return True
                said = output.decode(errors="replace").strip()[:200] or f"exit {process.returncode}"
        if attempt < TELL_TRIES:
            await asyncio.sleep(pause)
            pause *= 2
    log.error("sipedge: Kamailio was not told the edge drains (%s, %d tries: %s); the workers refuse new calls 503 "
              "themselves", KAMCMD, TELL_TRIES, said)
    return False
