"""The environment part of `python -m dispatcher --help`, from the catalogue: the settings a team sets,
with their defaults, and where the rest are."""

from __future__ import annotations

import re

from voicefleet_settings.catalogue import FIRST_SETTINGS, HELP_SETTINGS, SETTINGS
from voicefleet_settings.names import by_name

WIDTH = 26


def environment_help() -> str:
    """One line per setting: its name, what it is for, its default."""
    known = by_name()
    lines = [f"environment (docs/configuration.md lists all {len(SETTINGS)}; "
             "`voicefleet config explain NAME` explains one):"]
    for name, why in {**FIRST_SETTINGS, **HELP_SETTINGS}.items():
        default = known[name].shown_default.replace("`", "")
        if not default.startswith("—"):  # "— (required)" says it all; elsewhere the aside is the page's
            default = re.sub(r" \(.*\)$", "", default)
        lines.append(f"  {name:<{WIDTH}} {why} (default: {default})")
    return "\n".join(lines) + "\n"
