"""One light bot: the channel half of `python -m bot` and nothing else, many to a process.

It dials with the machine's own environment (the credential, the machine id or the cold session
the dispatcher gave the machine) through the bot's own channel client (bot/channel_client.py) and
the channel contract, takes one `assign`, reports `ready`, holds the session for the client's
`hold_seconds`, reports `ended` and leaves. Told `freeze` (the fleet planner's frozen tier), it
answers as the bot does, and when its channel drops it waits for its machine to run again (a
suspended machine keeps its process) and dials again with the same idle hello, as
bot/channel_session.py does after a thaw. No media: what the reserve is measured on is the time
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
from botchannel.contract import (
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
    METHOD_ASSIGN,
    METHOD_FREEZE,
    Assignment,
    Hello,
    RequestFailed,
)

DEFAULT_HOLD_SECONDS = 60.0
IDLE_LIMIT_SECONDS = 3600.0  # an idle bot nobody claims leaves, as BOT_MAX_IDLE_SECONDS makes it

Mint = Callable[[str], str]  # audience → the machine's own identity token, as its provider issues it
Ready = Callable[[str, float, bool], None]  # (session id, wall clock when its assignment landed, cold?)
MachineState = Callable[[], str]  # the machine's state at the emulated provider now
Connected = Callable[[float], object]  # (wall clock when its first hello was admitted)
RESUME_POLL_SECONDS = 0.02


class MintedIdentity(MachineIdentity):
    """The machine's identity token straight from the emulated provider (in this process), instead
    of through a socket per machine: the dispatcher verifies it exactly as a real bot's."""

    def __init__(self, audience: str, mint: Mint) -> None:
        super().__init__("fly", audience, {})
        self._mint = mint

    async def token(self) -> str | None:
        return self._mint(self.audience)


async def light_bot(env: Mapping[str, str], machine_id: str, channel_url: str, audience: str, mint: Mint,
                    ready: Ready, machine_state: MachineState, connected: Connected = lambda at: None) -> str:
    """Serves one session (or none); returns why it ended."""
    assigned: asyncio.Future[Assignment] = asyncio.get_running_loop().create_future()
    cold_session = env.get(ENV_SESSION_ID) or None
    frozen = False

    async def freeze(params: Mapping[str, Any]) -> Mapping[str, Any]:
        nonlocal frozen
        if assigned.done() or cold_session is not None:
            raise RequestFailed(409, "not_idle", "only an idle reserve bot is frozen")
        frozen = True
        return {"machine_id": hello.machine_id}

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
    def dial() -> BotChannel:
        return BotChannel(env.get("BOT_CHANNEL_URL") or channel_url, env.get("BOT_CHANNEL_TOKEN", ""), hello,
                          {METHOD_ASSIGN: assign, METHOD_FREEZE: freeze}, MintedIdentity(audience, mint))

    channel = dial()
    serving: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                await channel.connect()
            except ChannelError as exc:
                return f"no channel: {exc}"
            connected(time.time())
            serving = asyncio.create_task(channel.serve())
            waiting: set[asyncio.Future[Any]] = {assigned, serving}
            done, _ = await asyncio.wait(waiting, timeout=IDLE_LIMIT_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if assigned in done:
                break
            if serving not in done:
                return "idle too long"
            if not frozen:
                return "channel closed before an assignment"
            # Frozen: the machine is suspended (its process with it) until a thaw starts it again.
            while (state := machine_state()) != "started":
                if state in ("stopped", "destroyed"):
                    return "retired while frozen"
                await asyncio.sleep(RESUME_POLL_SECONDS)
            frozen = False
            await channel.close()
            channel = dial()
        assignment = assigned.result()
        ready(assignment.session_id, time.time(), cold_session is not None)
        await channel.report("ready", assignment.session_id)
        hold = assignment.body.get("hold_seconds", DEFAULT_HOLD_SECONDS)
        await asyncio.sleep(float(hold) if isinstance(hold, (int, float)) else DEFAULT_HOLD_SECONDS)
        await channel.report("ended", assignment.session_id, reason="peer_disconnected", exit_code=0)
        return "served"
    finally:
        if serving is not None:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        await channel.close()
