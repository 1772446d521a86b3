"""Build the configured machines provider and rooms service (`MACHINES` picks the provider).

Provider modules are imported lazily so a dispatcher only loads the client library it uses.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.machines.base import Machines
from dispatcher.rooms import Rooms
from dispatcher.settings import Settings, SettingsError


def build_machines(settings: Settings, env: Mapping[str, str]) -> Machines:
    if settings.machines == "local":
        from dispatcher.machines.local import LocalMachines, LocalSettings

        return LocalMachines(LocalSettings.from_env(env))
    raise SettingsError(f"MACHINES={settings.machines} is not available yet")


def build_rooms(settings: Settings, env: Mapping[str, str]) -> Rooms | None:
    """Local sessions talk to the bot directly over SmallWebRTC: no room."""
    if settings.machines == "local":
        return None
    raise SettingsError(f"MACHINES={settings.machines} needs DAILY_API_KEY (rooms are not available yet)")
