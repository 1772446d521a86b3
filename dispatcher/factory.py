"""Build the configured machines provider and rooms service (`MACHINES` picks the provider).

Provider modules are imported lazily so a dispatcher only loads the client library it uses.
What a provider hands the bot is not here but in `dispatcher.bot_contract`, so providers never
import the factory that imports them.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.machines.base import Machines
from dispatcher.rooms import Rooms
from dispatcher.settings import Settings


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
