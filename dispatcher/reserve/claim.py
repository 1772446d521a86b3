"""The warm claim: one idle bot on this replica's channel takes one session (the session's start
arrived here, or at another replica that relayed it: dispatcher/reserve/elsewhere.py).

An idle bot of the session's release (by the image its hello reported) that can serve the
session's transport is taken off the pool (synchronously: two concurrent starts never get the same
one), claimed across replicas (a bot offered to one session ever: dispatcher/store/coordination.py),
bound to the session, assigned it over the channel (the bot itself accepts one assignment, ever),
then re-tagged by the provider. Every way this can fail unbinds the bot and retires its machine;
a refused or unreachable bot makes way for the next, a failed re-tag for a cold launch.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from botchannel.contract import METHOD_ASSIGN
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.machines.base import LaunchResult, LaunchSpec, WarmMachines
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.observability.log_text import shown
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.idle import IdleRecords
from dispatcher.reserve.retirement import Retirements
from dispatcher.store.coordination import Claims

log = logging.getLogger("dispatcher.reserve.reserve")

ASSIGN_TIMEOUT_SECONDS = 2.0  # an idle bot answers in milliseconds; a slow one is skipped, not waited on


def serves(link: BotLink, image: str, transport: str) -> bool:
    """An idle bot a session may claim: of its release's image, able to serve its transport (a Daily
    bot refuses a WebRTC session and is then retired, which would burn the reserve for nothing)."""
    return link.hello.image == image and transport in link.hello.capabilities


class StartRecord(NamedTuple):
    """A start the reserve times until its bot's `ready` report."""

    began: float  # when its POST /start began (the reserve's clock)
    warm: bool  # a claimed idle bot, or a cold launch
    release: str  # the session's release, which labels its time to ready


class Refused(enum.Enum):
    REFUSED = "refused"


REFUSED = Refused.REFUSED  # `serve`: the bot would not take the session (the next may)


class WarmClaim:
    def __init__(
        self,
        machines: WarmMachines,
        channels: BotChannels,
        claims: Claims,
        idle: IdleRecords,
        retirements: Retirements,
        starts: dict[str, StartRecord],  # the reserve's start records, by session
        image_of: Callable[[LaunchSpec], str],  # the image a bot of the session's release reports
        clock: Callable[[], float],  # the reserve's, which its idle records are on
    ) -> None:
        self._machines = machines
        self._channels = channels
        self._claims = claims
        self._idle = idle
        self._retirements = retirements
        self._starts = starts
        self.image_of = image_of
        self._clock = clock

    async def claim(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        """The session's result from a claimed idle bot, or None: no bot could take it (launch cold)."""
        image = self.image_of(spec)  # a bot of the session's release, never another's
        assignment = session_assignment(spec)
        while (link := self._channels.take_idle(lambda c: serves(c, image, assignment.transport))) is not None:
            idle_since = self._idle.take(link.machine_id)
            if not await self._claims.claim(link.machine_id, spec.session_id, link.expires):  # lasts as its credential
                continue  # another replica's session took it: not ours to offer, nor to retire
            outcome = await self.serve(link, spec, began, idle_since)
            if outcome is not REFUSED:
                return outcome
        return None

    async def serve(self, link: BotLink, spec: LaunchSpec, began: float,
                    idle_since: float | None = None) -> LaunchResult | None | Refused:
        """The claimed bot `link` takes the session: the result, None (launch cold: its machine
        could not be re-tagged) or REFUSED (the bot would not: try the next). `idle_since`: its
        idle hello (the reserve's clock), for the idle time the session's cost carries."""
        assignment = session_assignment(spec)
        # Routed and timed before it is asked: its `ready` report may follow its answer at once.
        self._channels.bind(link, spec.session_id)
        self._starts[spec.session_id] = StartRecord(began, True, spec.release)
        try:
            await link.request(METHOD_ASSIGN, assignment.params(), timeout=ASSIGN_TIMEOUT_SECONDS)
            result = await self._machines.adopt(link.machine_id, spec)
        except BaseException as exc:
            # Every way a claim can fail unbinds the bot, so the session's cold bot (or the
            # next claim) is never refused in favour of one that does not serve it.
            self._channels.unbind(link, spec.session_id)
            self._starts.pop(spec.session_id, None)
            self._retirements.soon(link, "claim_refused" if isinstance(exc, BotRequestFailed) else "adopt_failed")
            if isinstance(exc, BotRequestFailed):
                # Refused (another replica got it first) or unreachable: never offered again.
                log.warning("reserve bot %s refused session %s (%s); trying the next", shown(link.machine_id),
                            spec.session_id, exc.code)
                return REFUSED
            if isinstance(exc, ProviderError):
                # The bot accepted but its machine cannot carry the session's tag: stop it (a
                # bot serves one session ever, so it cannot go back) and start cold instead.
                log.warning("session %s: re-tagging reserve bot %s failed (%s); launching cold",
                            spec.session_id, shown(link.machine_id), shown(exc))
                return None
            raise
        if idle_since is not None and result.claimed:
            result = replace(result, idle_seconds=round(max(0.0, self._clock() - idle_since), 3))
        return result
