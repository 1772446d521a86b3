"""The plan's `derived` block: what a stack's cloud, size and profile derived, and what the GCP
dispatcher's instances rise to for its sessions. Above stacks/config/derived.py, which the reader itself
imports, so the channel's arithmetic and the reader's defaults can be read here without a cycle."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.settings.derived import DEFAULT_PROFILE
from stacks.config.channel import risen_instances
from stacks.config.derived import COMPUTED, PROFILE_NAMES, SIZE_NAMES, STACK_CLOUDS, Source, derived
from stacks.config.reader import DEFAULTS


def explain(config: Mapping[str, str], namespace: str = "voicefleet") -> list[str]:
    """The plan's `derived` block: what the stack sets, what its cloud, size and profile derived (this
    cloud's keys only) and which derived values the stack sets over; nothing without a size, a profile
    or a key its cloud derives."""
    size, profile = config.get(f"{namespace}:size"), config.get(f"{namespace}:profile")
    cloud = config.get(f"{namespace}:cloud", "")
    if not size and not profile and not STACK_CLOUDS.get(cloud):
        return []
    values = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                     cloud=cloud)
    is_set = {key.split(":", 1)[1] for key in config if key.startswith(namespace + ":")}
    lines = ["set: " + ", ".join(sorted(is_set))]
    if STACK_CLOUDS.get(cloud):
        shown = [f"{key}={value}" for key, (value, came) in sorted(values.items())
                 if came == "cloud" and key not in is_set]
        lines.append(f"derived from cloud {cloud}: " + (", ".join(shown) or "nothing (set, or a profile's)"))
    for source, name in (("size", size), ("profile", profile or DEFAULT_PROFILE)):
        if name is None:
            lines.append("derived from size: nothing (no size set: the defaults)")
            continue
        shown = [f"{key}={value}" for key, (value, came) in sorted(values.items())
                 if came == source and key not in is_set]
        lines.append(f"derived from {source} {name}: " + (", ".join(shown) or "nothing (the defaults)"))
    if cloud == "gcp" and (computed := _instances(config, values, namespace)):
        lines.append(computed)
    if overridden := sorted(key for key in values if key in is_set):
        lines.append("set over a derived value: " + ", ".join(overridden))
    return lines


def _instances(config: Mapping[str, str], values: Mapping[str, tuple[str, Source]], namespace: str) -> str | None:
    """The GCP dispatcher's instances the program raises from their defaults for the sessions (`COMPUTED`),
    as the plan's line; None where nothing rises (no channel, both set, the defaults enough) or a value
    is no number (the program names it)."""
    def value(key: str) -> str:
        return config.get(f"{namespace}:{key}") or values.get(key, (str(DEFAULTS[key]), "default"))[0]

    token = f"{namespace}:botChannelToken" in config
    if value("botChannel").lower() != "true" and not (token and f"{namespace}:botChannel" not in config):
        return None
    is_set = [f"{namespace}:{key}" in config for key in COMPUTED]
    try:
        risen = risen_instances(int(value("maxConcurrentSessions")), int(value("reserveMaxIdle")),
                                int(value(COMPUTED[0])), int(value(COMPUTED[1])), min_set=is_set[0], max_set=is_set[1])
    except ValueError:
        return None
    shown = [f"{key}={number}" for key, number, was_set in zip(COMPUTED, risen, is_set, strict=True)
             if not was_set and number != DEFAULTS[key]]
    return "derived from maxConcurrentSessions and reserveMaxIdle: " + ", ".join(shown) if shown else None
