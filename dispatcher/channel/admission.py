"""Which hellos the channel admits: a bot reaches what its credential was issued for, and no more.

- An idle credential (a reserve bot) names the bot id the reserve launched; its hello must say that
  id, and an idle hello is admitted once: never again here and, with a store shared by several
  replicas, at no other replica either (the store's first-hello record, kept while the
  credential lives). So a stolen idle credential can never pose as an idle bot, anywhere.
- A claimed reserve bot that dials again (its channel dropped; its replica drained or died) may
  name its session and nothing else: the session this replica bound it to, or, at another
  replica, the session the store's claim record names (written, atomically, before the bot was
  asked to serve it; removed when the claim failed).
- A frozen reserve bot that is thawed dials again with its idle credential and hello: admitted
  once more, at whichever replica it reaches, only while the reserve expects it back (the store's
  `thaw:<bot id>`, written before the thaw and spent by this hello), and the replica learns who
  waits for it (`thawed_for`: a claim at some replica, or the hot tier).
- A cold bot's credential names its session; a hello for it is refused only where another machine
  already serves that session.

What the other replicas saw comes from the coordination's claims (dispatcher/store/coordination.py):
one process has none, so it decides from what it saw itself; so does a replica whose store does not
answer at the moment (an idle hello is then admitted once per replica, and a re-dial is admitted
where the bot's own replica bound it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.store.coordination import Claims

MAX_OWNERS_KEPT = 100_000  # only verified hellos and claims add owners; live sessions are never evicted


class HelloRules:
    def __init__(self, claims: Claims, clock: Callable[[], float] = time.time) -> None:
        self._claims = claims  # what the other replicas saw
        self._owners: dict[str, str] = {}  # session → the machine id of its bot (reconnects must match)
        self._seen_idle: dict[str, int] = {}  # idle credentials already used here → their expiry
        self._back_for: dict[str, str] = {}  # thawed bots admitted again → who waits for them
        self._clock = clock

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        """Why `hello` is not what `grant` was issued for, or None when it is admitted. An admitted
        idle hello is recorded as the credential's one use (here before any `await`, so two hellos at
        this replica never both pass; then in the store)."""
        if grant.kind == "idle":
            if hello.machine_id != grant.subject:
                return f"credential of bot {grant.subject}"
            if hello.session_id is None:
                used = "credential already used"
                if hello.machine_id not in self._seen_idle:
                    self._admit_idle(grant)
                    if await self._claims.first_idle_hello(grant.subject, grant.expires):
                        return None
                    used = "credential already used at another replica"
                # Used before: only a thawed bot, once per thaw, is admitted again (at any replica).
                waiter = await self._claims.welcome_back(hello.machine_id)
                if waiter is None:
                    return used
                self._back_for[hello.machine_id] = waiter
                return None
            # A claimed reserve bot reconnecting: the session must be the one it was bound to.
            if self._owners.get(hello.session_id) == hello.machine_id:
                return None
            if await self._claims.claimed_for(hello.machine_id) == hello.session_id:
                return None
            return "not its session"
        if hello.session_id != grant.subject:
            return f"credential of session {grant.subject}"
        owner = self._owners.get(hello.session_id)
        return None if owner is None or owner == hello.machine_id else f"session served by bot {owner}"

    def _admit_idle(self, grant: BotGrant) -> None:
        now = self._clock()
        for machine_id, expires in list(self._seen_idle.items()):  # forget what can no longer dial
            if expires <= now:
                del self._seen_idle[machine_id]
        self._seen_idle[grant.subject] = grant.expires

    def thawed_for(self, bot_id: str) -> str | None:
        """Who waits for the thawed bot `bot_id` just admitted here (asked once, at its hello)."""
        return self._back_for.pop(bot_id, None)

    def own(self, session_id: str, machine_id: str, live: Container[str]) -> None:
        """`machine_id` serves `session_id`; `live` are the sessions whose bot is here (never evicted)."""
        self._owners[session_id] = machine_id
        if len(self._owners) > MAX_OWNERS_KEPT:  # oldest first, never a session whose bot is here
            for old in [s for s in self._owners if s not in live][: len(self._owners) - MAX_OWNERS_KEPT]:
                del self._owners[old]

    def disown(self, session_id: str, machine_id: str) -> None:
        if self._owners.get(session_id) == machine_id:
            del self._owners[session_id]
