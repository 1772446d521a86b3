"""What phone calls need, built once per app; the routes reach it as the app state's `phone`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dispatcher.channel.bots import BotChannels
from dispatcher.metrics import Metrics
from dispatcher.phone.call_store import CallStore, OwnerRelay
from dispatcher.phone.calls import PhoneCalls, Sessions
from dispatcher.phone.media_links import MediaLinks
from dispatcher.phone.metrics import PhoneMetrics
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.signatures import Replays
from dispatcher.phone.tokens import CallTokens
from dispatcher.sessions.ids import Caller
from dispatcher.settings import Settings
from dispatcher.store.coordination import Coordination
from dispatcher.store.spent import SpentOnce


@dataclass
class PhoneState:
    settings: PhoneSettings
    tokens: CallTokens
    calls: PhoneCalls
    metrics: PhoneMetrics | None = None
    webhook_replays: Replays = field(default_factory=Replays)  # Plivo nonces, Twilio CallSids seen
    # Signed Twilio streams seen here (TWILIO_SIGNED_STREAMS): kept as long as Twilio's longest call.
    signed_streams: Replays = field(default_factory=lambda: Replays(memory_seconds=25 * 3600.0))
    active_calls: int = 0
    draining: bool = False  # a deploy is replacing this replica: calls in flight go on, new ones go elsewhere
    clock: Callable[[], float] = time.time  # epoch seconds: when a Daily dial-in call credential expires
    shared_spent: SpentOnce | None = None  # with a coordination store: a token is spent at every replica
    # A token's owner (a caller id) → that API key's caller: the API's keys (`Authenticator.by_id`).
    owners: Callable[[str], Caller | None] = field(default=lambda _caller_id: None)

    def start_draining(self) -> None:
        self.draining = True


def build_phone_state(
    env: Mapping[str, str],
    settings: Settings,
    sessions: Sessions,
    channels: BotChannels,
    metrics: Metrics,
    coordination: Coordination | None = None,
    owner_relay: OwnerRelay | None = None,
    owners: Callable[[str], Caller | None] = lambda _caller_id: None,
) -> PhoneState:
    """`coordination` (several replicas) and `owner_relay` (its relay to the replica holding a bot's
    channel) come together: then a call's two sockets may be at two replicas."""
    # Keyless only where the API is keyless: a local dispatcher that serves loopback alone.
    keyless = settings.machines == "local" and not settings.api_key_hashes
    phone = PhoneSettings.from_env(
        env, keyless=keyless, bot_channel_token=settings.bot_channel_token,
        default_drain_seconds=settings.max_session_seconds,
    )
    store = None
    if coordination is not None and owner_relay is not None:
        store = CallStore(coordination.calls, coordination.media, owner_relay)
    return PhoneState(
        settings=phone,
        tokens=CallTokens(phone.token_key),
        calls=PhoneCalls(sessions, channels, MediaLinks(), start_wait_seconds=settings.start_wait_seconds, store=store),
        metrics=PhoneMetrics(metrics.registry, metrics.provider),
        shared_spent=coordination.spent if coordination is not None else None,
        owners=owners,
    )
