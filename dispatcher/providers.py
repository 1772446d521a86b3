"""Build the configured machines provider and rooms service (`MACHINES` picks the provider).

Provider modules are imported lazily so a dispatcher only loads the client library it uses.
Also home of `bot_environment`: the variables every cloud provider hands the bot (bot/config.py
reads exactly these), so ECS, Fly and the GCE startup script agree on one contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dispatcher.machines.base import LaunchSpec, Machines
from dispatcher.rooms import Rooms
from dispatcher.settings import Settings


def bot_environment(spec: LaunchSpec) -> dict[str, str]:
    """The session's values for the bot's environment. Holds the bot token: environment only,
    never a command line (visible in `ps`, task descriptions and audit logs) or a log line."""
    env = {
        "VOICEFLEET_SESSION_ID": spec.session_id,
        "VOICEFLEET_BODY": json.dumps(dict(spec.body), separators=(",", ":")),
        "MAX_SESSION_SECONDS": str(spec.max_session_seconds),
    }
    if spec.room_url:
        env["DAILY_ROOM_URL"] = spec.room_url
    if spec.bot_token:
        env["DAILY_TOKEN"] = spec.bot_token
    return env


def build_machines(settings: Settings, env: Mapping[str, str]) -> Machines:
    if settings.machines == "ecs":
        from dispatcher.machines.ecs import EcsMachines, EcsSettings

        return EcsMachines(EcsSettings.from_env(env))
    if settings.machines == "gce":
        from dispatcher.machines.gce import GceMachines, GceSettings

        return GceMachines(GceSettings.from_env(env))
    if settings.machines == "fly":
        from dispatcher.machines.fly import FlyMachines, FlySettings

        return FlyMachines(FlySettings.from_env(env))
    from dispatcher.machines.local import LocalMachines, LocalSettings

    return LocalMachines(LocalSettings.from_env(env))


def build_rooms(settings: Settings, env: Mapping[str, str]) -> Rooms | None:
    """Local sessions talk to the bot directly over SmallWebRTC: no room. Cloud ones use Daily."""
    if settings.machines == "local":
        return None
    from dispatcher.daily import DailyRooms, DailySettings

    return DailyRooms(DailySettings.from_env(env))
