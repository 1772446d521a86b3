"""The entry points other than Pipecat's `bot(runner_args)` that the bot host runs unchanged: one table.

Two readers find them: the bot host in the imported module, by the function's signature
(bot/entry_shapes.py, which also hands each what its own server would), and the deploy check in the
source's syntax tree, never running it (images/bot_entry.py). Both read this table, so a shape added
here is accepted at deploy exactly when the host can run it. Standard library only: the deploy check
imports it outside the bot image.

A shape is known by its function's name and the positional parameters it is called with, in that
order; every other parameter must have a default. Each serves one transport; a session of another is
refused with the shape's words, which name the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from bot.transport_advice import DAILY_ONLY

NEEDS_WEBRTC = ('start WebRTC sessions (POST /start {"transport": "webrtc"}, with webrtc in the dispatcher\'s '
                "TRANSPORTS), or add `async def bot(runner_args)` that builds its transport with Pipecat's "
                "create_transport(runner_args, …) for this one")


@dataclass(frozen=True)
class EntryShape:
    function: str  # the module-level `async def`'s name
    parameters: tuple[str, ...]  # what it is called with, positionally
    transport: str  # the one transport it serves ("webrtc", "daily")
    # The refusal of another transport's session, naming the way out: `$entry` is the shape (`entry`),
    # `$session` the session it was given ("Daily's (DailyRunnerArguments)").
    refusal: str

    @property
    def entry(self) -> str:
        """`run_bot(webrtc_connection)`: how the session's messages and the deploy check name it."""
        return f"{self.function}({', '.join(self.parameters)})"

    def refused(self, session: str) -> str:
        return Template(self.refusal).substitute(entry=self.entry, session=session)


# whatsapp, p2p-webrtc/voice-agent: their server answers the SmallWebRTC offer and hands the connection over.
RUN_BOT = EntryShape("run_bot", ("webrtc_connection",), "webrtc",
                     f"$entry is handed a WebRTC connection, and this session is $session: {NEEDS_WEBRTC}")
JOINS_DAILY = f"$entry joins a Daily room, and this session is $session; {DAILY_ONLY}"
# storytelling-chatbot, deployment/flyio-example: their server makes a Daily room and passes it.
MAIN_ROOM = EntryShape("main", ("room_url", "token"), "daily", JOINS_DAILY)
# instant-voice: its server runs `python -m single_bot -u ROOM -t TOKEN`.
MAIN_COMMAND_LINE = EntryShape("main", (), "daily", JOINS_DAILY)
# Tried in this order: a `main(room_url, token)` is not read as a `main()` whose other parameters are defaulted.
ENTRY_SHAPES = (RUN_BOT, MAIN_ROOM, MAIN_COMMAND_LINE)
