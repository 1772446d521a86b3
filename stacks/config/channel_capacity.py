"""How many bot channels each AWS dispatcher replica takes, and what the stack tells it.

Every live bot holds one channel to a dispatcher replica (each session's bot and each idle or
warming reserve bot), and the ALB spreads them over the replicas. The dispatcher refuses a
handshake past `BOT_CHANNEL_MAX_CONNECTIONS` (dispatcher/api/routers/bots.py; 1,000 by default), so
the stack sets it from `maxConcurrentSessions + reserveMaxIdle` spread over `dispatcherCount - 1`
replicas: with one replica lost or restarting (a deploy replaces them one by one), the rest still
take every bot's channel. `MAX_CONNECTIONS` (all sockets, 4,000 by default) is raised with it: a
phone call holds three sockets on its replica (channel, carrier media, bot media), and
`SESSION_WAITS` connections may wait on sessions besides.

The per-replica ceiling, CHANNELS_PER_REPLICA = 2,000:
- descriptors: 2,000 calls × 3 sockets + 1,000 waits = 7,000 connections, far inside the half of
  Fargate's `nofile` limit (65,535 soft and hard; ECS API reference, "Ulimit") the server allows
  itself (dispatcher/serving/server.py);
- memory and CPU per open channel on Fargate are not measured (docs/pulumi.md says so): the ceiling
  is twice the dispatcher's own default, which every other stack runs with, not a measured limit.
A stack whose bots need more per surviving replica is refused at preview, naming the dispatcherCount
that fits. Relayed phone calls cost CPU besides: 0.37 % of a core each (docs/performance.md,
"dispatcher CPU per concurrent call"), so with carriers configured a note says when the surviving
replicas' vCPUs cannot relay `maxConcurrentSessions` calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from dispatcher.settings import Settings as DispatcherSettings
from stacks.config import channel
from stacks.config.phone import CALL_CREDENTIALS
from stacks.config.reader import Reader

if TYPE_CHECKING:
    from stacks.config.model import Settings

CHANNELS_PER_REPLICA = 2000
SOCKETS_PER_CALL = channel.SOCKETS_PER_RELAYED_CALL
CORE_SHARE_PER_CALL = channel.CORE_SHARE_PER_CALL  # docs/performance.md: 0.37 % of one core
_DEFAULTS = DispatcherSettings()


def bot_channels(settings: Settings) -> int:
    """Channels open at the peak: every session's bot and every idle or warming reserve bot."""
    return settings.max_concurrent_sessions + settings.reserve.max_idle


def surviving_replicas(count: int) -> int:
    return max(count - 1, 1)  # one replica has no spare to lose


def per_replica(settings: Settings, count: int) -> int:
    return -(-bot_channels(settings) // surviving_replicas(count))


def dispatcher_environment(settings: Settings, count: int) -> dict[str, str]:
    """BOT_CHANNEL_MAX_CONNECTIONS and MAX_CONNECTIONS for each replica, never below the defaults."""
    channels = max(per_replica(settings, count), _DEFAULTS.bot_channel_max_connections)
    connections = max(_DEFAULTS.max_connections, SOCKETS_PER_CALL * channels + _DEFAULTS.session_waits)
    return {"BOT_CHANNEL_MAX_CONNECTIONS": str(channels), "MAX_CONNECTIONS": str(connections)}


def aws_limits(cfg: Reader, settings: Settings, count: int, dispatcher_cpu: int) -> None:
    """Refuses bots that do not fit the surviving replicas; notes phone relays their vCPUs cannot carry."""
    if channel.enabled(settings) and per_replica(settings, count) > CHANNELS_PER_REPLICA:
        fits = -(-bot_channels(settings) // CHANNELS_PER_REPLICA) + 1
        raise cfg.fail("maxConcurrentSessions", f"plus reserveMaxIdle ({settings.reserve.max_idle}) bot channels must "
                                                f"fit dispatcherCount - 1 = {surviving_replicas(count)} replica(s) at "
                                                f"{CHANNELS_PER_REPLICA} channels each, so that losing one replica "
                                                f"still serves every bot: set dispatcherCount to at least {fits} "
                                                f"(got {settings.max_concurrent_sessions})")
    if set(settings.secrets.phone) & CALL_CREDENTIALS:  # WhatsApp's calls reach the bot over WebRTC, not relayed
        cores = surviving_replicas(count) * dispatcher_cpu / 1024
        calls = int(cores / CORE_SHARE_PER_CALL)
        if settings.max_concurrent_sessions > calls:
            pulumi.log.warn(f"phone calls: {surviving_replicas(count)} surviving dispatcher replica(s) of "
                            f"{dispatcher_cpu / 1024:g} vCPU relay about {calls} calls at 0.37 % of a core each "
                            f"(docs/performance.md), below maxConcurrentSessions={settings.max_concurrent_sessions}: "
                            "raise dispatcherCpu or dispatcherCount if most sessions are calls (docs/pulumi.md)")
