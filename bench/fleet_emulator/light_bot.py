"""One light bot: the channel half of `python -m bot` and nothing else, many to a process.

It dials with the machine's own environment (the credential, the machine id or the cold session
the dispatcher gave the machine) through the bot's own channel client (bot/channel_client.py) and
the channel contract, takes one `assign`, reports `ready`, holds the session for the client's
`hold_seconds`, reports `ended` and leaves. No media: what the reserve is measured on is the time
to a ready bot, and a Pipecat pipeline per session would make the harness its own bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.channel_client import BotChannel, ChannelError
from bot.config import ENV_SESSION_ID
from bot.identity import MachineIdentity
from botchannel.contract import IMAGE_VARIABLE, MACHINE_ID_VARIABLE, METHOD_ASSIGN, Assignment, Hello, RequestFailed

DEFAULT_HOLD_SECONDS = 60.0
IDLE_LIMIT_SECONDS = 3600.0  # an idle bot nobody claims leaves, as BOT_MAX_IDLE_SECONDS makes it

Mint = Callable[[str], str]  # audience → the machine's own identity token, as its provider issues it
Ready = Callable[[str, float, bool], None]  # (session id, wall clock when its assignment landed, cold?)


class MintedIdentity(MachineIdentity):
    """The machine's identity token straight from the emulated provider (in this process), instead
    of through a socket per machine: the dispatcher verifies it exactly as a real bot's."""

    def __init__(self, audience: str, mint: Mint) -> None:
        super().__init__("fly", audience, {})
        self._mint = mint

    async def token(self) -> str | None:
        return self._mint(self.audience)


async def light_bot(env: Mapping[str, str], machine_id: str, channel_url: str, audience: str, mint: Mint,
                    ready: Ready) -> str:
    """Serves one session (or none); returns why it ended."""
    assigned: asyncio.Future[Assignment] = asyncio.get_running_loop().create_future()
    cold_session = env.get(ENV_SESSION_ID) or None

    async def assign(params: Mapping[str, Any]) -> Mapping[str, Any]:
        assignment = Assignment.from_params(params)
        if assigned.done():
            if assigned.result().session_id == assignment.session_id:
                return {"session_id": assignment.session_id, "machine_id": machine_id}
            raise RequestFailed(409, "already_assigned", "this bot serves exactly one session, ever")
        if cold_session is not None and assignment.session_id != cold_session:
            raise RequestFailed(409, "not_its_session", "this bot was launched for another session")
        assigned.set_result(assignment)
        return {"session_id": assignment.session_id, "machine_id": machine_id}

    hello = Hello(machine_id=env.get(MACHINE_ID_VARIABLE) or machine_id, image=env.get(IMAGE_VARIABLE) or "dev",
                  capabilities=("webrtc",), session_id=cold_session)
    channel = BotChannel(env.get("BOT_CHANNEL_URL") or channel_url, env.get("BOT_CHANNEL_TOKEN", ""), hello,
                         {METHOD_ASSIGN: assign}, MintedIdentity(audience, mint))
    try:
        await channel.connect()
    except ChannelError as exc:
        return f"no channel: {exc}"
    serving = asyncio.create_task(channel.serve())
    try:
        waiting: set[asyncio.Future[Any]] = {assigned, serving}
        done, _ = await asyncio.wait(waiting, timeout=IDLE_LIMIT_SECONDS,
                                     return_when=asyncio.FIRST_COMPLETED)
        if assigned not in done:
            return "channel closed before an assignment" if serving in done else "idle too long"
        assignment = assigned.result()
        ready(assignment.session_id, time.time(), cold_session is not None)
        await channel.report("ready", assignment.session_id)
        hold = assignment.body.get("hold_seconds", DEFAULT_HOLD_SECONDS)
        await asyncio.sleep(float(hold) if isinstance(hold, (int, float)) else DEFAULT_HOLD_SECONDS)
        await channel.report("ended", assignment.session_id, reason="peer_disconnected", exit_code=0)
        return "served"
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await channel.close()
