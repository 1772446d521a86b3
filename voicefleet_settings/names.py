"""The catalogue's names, looked up: imported at start-up by the typo check and the sources, so it is
built once, on first use."""

from __future__ import annotations

from functools import cache

from voicefleet_settings.model import Setting


@cache
def by_name() -> dict[str, Setting]:
    """Every setting by its name, and by each of its deprecated aliases."""
    from voicefleet_settings.catalogue import SETTINGS

    found = {s.name: s for s in SETTINGS}
    for setting in SETTINGS:
        found.update(dict.fromkeys(setting.aliases, setting))
    return found


def meaning(setting: Setting) -> str:
    """What a setting means: its own words, or those of the row it shares."""
    if setting.meaning or setting.row is None:
        return setting.meaning
    return by_name()[setting.row].meaning
