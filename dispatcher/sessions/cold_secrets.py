"""A cold start's side of session secrets: the bot's channel credential, its values held for its
hello (dispatcher/channel/session_secrets.py), and the bot that never comes for them.

A provider whose machines the platform makes from its own pool's template (`PooledMachines`: a
Kubernetes agent-sandbox pool) gets no credential for them: no launch value reaches such a machine
but through objects whoever may read them sees (a claim, its pod), and its bot dials with its pod's
identity alone, which admits it as the session's once the session's claim holds its pod.

Before the machine is launched its `assign` is deposited (a start whose replica already holds
as many as it keeps fails before it launches anything); a reserve bot that took the session
instead got the same values with its claim, so the deposit is dropped at once. A cold bot that
has not taken its values by the deadline never dialled (its image never started, its network is
closed, the channel is misconfigured): its values are dropped, its machine stopped and the
failure counted, rather than a machine billed until the reaper's maximum. The bot itself gives
up sooner (bot/channel_session.py) and exits with its own reason, which its provider reports as
the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.session_secrets import SessionSecrets
from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machines, PooledMachines
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.observability.metrics import Metrics
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.settings import Settings
from dispatcher.store.coordination import Coordination
from dispatcher.store.secrets_vault import VaultFull

log = logging.getLogger("dispatcher.sessions.cold_secrets")

CREDENTIAL_SLACK_SECONDS = 600  # a cold start (Fargate, GCE: a minute or two) and reconnects
# From the launch to the bot's taking its values: the slowest cold start (a GCE VM's boot and
# image pull) with room to spare; a bot that has not dialled by then is stopped.
BOT_DIAL_SECONDS = 300.0
NEVER_DIALLED = "bot_never_dialled"
# The record outlives the watch's check, which drops it; its TTL is for a watch that died with its replica.
HELD_PAST_DEADLINE_SECONDS = 60.0


class ColdSecrets:
    def __init__(
        self,
        settings: Settings,
        machines: Machines,
        channels: BotChannels,
        metrics: Metrics,
        coordination: Coordination,
        deadline_seconds: float | None = None,
    ) -> None:
        assert channels.credentials is not None, "a deployment without a channel has no cold secrets to hold"
        self._credentials = channels.credentials
        self._settings = settings
        self._machines = machines
        # A provider may say its machines dial with their identity alone (a Kubernetes session pod).
        self._issues_credentials = not isinstance(machines, PooledMachines) and getattr(
            machines, "issues_credentials", True)
        self._metrics = metrics
        self.delivery = SessionSecrets(channels, coordination.session_values(self._credentials.sealing_key))
        self.deadline_seconds = deadline_seconds or settings.start_wait_seconds + BOT_DIAL_SECONDS
        self._watches: set[asyncio.Task[None]] = set()

    def channel_token(self, session_id: str) -> str | None:
        """The cold bot's channel credential: it opens this session's channel and nothing else. None
        for a pool's machine, whose bot dials with its identity alone."""
        if not self._issues_credentials:
            return None
        s = self._settings
        return self._credentials.issue("session", session_id,
                                       s.max_session_seconds + s.start_wait_seconds + CREDENTIAL_SLACK_SECONDS)

    async def hold(self, spec: LaunchSpec) -> None:
        """Deposits the session's values for its bot's hello; the start fails (nothing launched) if it cannot."""
        try:
            await self.delivery.deposit(spec.session_id, session_assignment(spec).params(),
                                        self.deadline_seconds + HELD_PAST_DEADLINE_SECONDS)
        except VaultFull as exc:
            raise ApiError(503, "at_capacity", f"{exc}; try again shortly", retry_after=1.0) from None

    async def launched(self, session_id: str, result: LaunchResult) -> None:
        if result.claimed:  # a reserve bot got them with its claim
            await self.delivery.discard(session_id)
        elif result.created:  # a new cold machine: its bot must come for them
            release = result.machine.release or DEFAULT_RELEASE
            task = asyncio.create_task(self._watch(session_id, release), name=f"cold-secrets-{session_id}")
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)
        # else the session already had its machine, whose own start watches it

    async def forget(self, session_id: str) -> None:
        """The start failed or the session was stopped: nobody will come for them."""
        await self.delivery.discard(session_id)

    async def _watch(self, session_id: str, release: str) -> None:
        await asyncio.sleep(self.deadline_seconds)
        if not await self.delivery.waiting(session_id):
            return
        await self.delivery.discard(session_id)
        self._metrics.failed(NEVER_DIALLED, release)
        log.error("session %s: its bot never took its session values over the channel within %gs; "
                  "stopping its machine", session_id, self.deadline_seconds)
        with contextlib.suppress(Exception):
            await self._machines.stop(session_id)

    async def aclose(self) -> None:
        for task in list(self._watches):
            task.cancel()
        await self.delivery.aclose()
