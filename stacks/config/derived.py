"""What a stack's `size` and `profile` set the defaults of: the same names as the dispatcher's
VOICEFLEET_SIZE and VOICEFLEET_PROFILE (dispatcher/settings/derived.py), whose table also gives the
values both share (sessions at once, the reserve's bounds). A key the stack sets wins.

A size is a deployment's scale: the bots' and the dispatcher's machines on each cloud, the dispatcher's
replicas on AWS (three share a store, so `large` needs the store's secrets) and the sessions it admits.
`small` is the defaults themselves. A profile is how careful a deployment is: `prod` protects stateful
resources, keeps logs, secrets and images longer, spreads AWS over three zones and watches its
containers, and turns the bot channel on (so the warm reserve); `dev` is the defaults. Irreversible
choices (Key Vault purge protection) are never derived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from dispatcher.settings.derived import DEFAULT_PROFILE, PROFILES, SIZES

SIZE_NAMES = tuple(SIZES)
PROFILE_NAMES = tuple(PROFILES)
# Stack keys whose value is the dispatcher's own setting of the same meaning: one table, read from it.
SHARED_WITH_DISPATCHER = {
    "maxConcurrentSessions": "MAX_CONCURRENT_SESSIONS",
    "reserveMinIdle": "RESERVE_MIN_IDLE",
    "reserveMaxIdle": "RESERVE_MAX_IDLE",
}
# The stacks' own sizing keys, per size (values as the stack file would hold them).
STACK_SIZES: dict[str, dict[str, str]] = {
    "small": {
        "botCpu": "512", "botMemory": "1024",  # AWS Fargate and Azure ACI (CPU units, MiB)
        "dispatcherCpu": "256", "dispatcherMemory": "512", "dispatcherCount": "1",
        "botMachineType": "e2-small", "botDiskGb": "10",  # GCP
        "k8sBotCpu": "1", "k8sBotMemory": "1Gi",
    },
    "medium": {
        "botCpu": "1024", "botMemory": "2048",
        "dispatcherCpu": "512", "dispatcherMemory": "1024", "dispatcherCount": "1",
        "botMachineType": "e2-medium", "botDiskGb": "10",
        "k8sBotCpu": "1", "k8sBotMemory": "2Gi",
    },
    "large": {
        "botCpu": "1024", "botMemory": "2048",
        "dispatcherCpu": "512", "dispatcherMemory": "1024", "dispatcherCount": "3",
        "botMachineType": "e2-standard-2", "botDiskGb": "20",
        "k8sBotCpu": "2", "k8sBotMemory": "4Gi",
    },
}
STACK_PROFILES: dict[str, dict[str, str]] = {
    "dev": {},
    "prod": {
        "environment": "prod", "protect": "true", "imageRetentionCount": "50",
        "azCount": "3", "containerInsights": "true", "logRetentionDays": "90", "secretRecoveryDays": "30",  # AWS
        "azureLogRetentionDays": "90",
        "botChannel": "true",  # the warm reserve: bots dial the dispatcher's channel (its token the stack's own)
    },
}
Source = Literal["set", "size", "profile", "default"]
# The clouds that read a derived key (the rest read it on every cloud): the plan shows a stack its own.
CLOUDS_READING: dict[str, tuple[str, ...]] = {
    "botCpu": ("aws", "azure"), "botMemory": ("aws", "azure"), "dispatcherCpu": ("aws",), "dispatcherCount": ("aws",),
    "dispatcherMemory": ("aws", "gcp", "azure"), "botMachineType": ("gcp",), "botDiskGb": ("gcp",),
    "k8sBotCpu": ("k8s",), "k8sBotMemory": ("k8s",), "azCount": ("aws",), "containerInsights": ("aws",),
    "logRetentionDays": ("aws",), "secretRecoveryDays": ("aws",), "azureLogRetentionDays": ("azure",),
}


def sized(size: str) -> dict[str, str]:
    """Every key a size derives: the dispatcher's shared values, then the stacks' own."""
    return {**{key: SIZES[size][name] for key, name in SHARED_WITH_DISPATCHER.items()}, **STACK_SIZES[size]}


def derived(size: str | None, profile: str | None) -> dict[str, tuple[str, Source]]:
    """Each derived key's value and what derived it (a profile never sets what a size does)."""
    found: dict[str, tuple[str, Source]] = {}
    for key, value in (sized(size) if size else {}).items():
        found[key] = (value, "size")
    for key, value in STACK_PROFILES[profile or DEFAULT_PROFILE].items():
        found[key] = (value, "profile")
    return found


def derived_keys() -> frozenset[str]:
    """Every key some size or profile derives."""
    return frozenset(k for size in SIZE_NAMES for k in sized(size)) | frozenset(
        k for profile in PROFILE_NAMES for k in STACK_PROFILES[profile])


def explain(config: Mapping[str, str], namespace: str = "voicefleet") -> list[str]:
    """The plan's `derived` block: what the stack sets, what its size and its profile derived (this
    cloud's keys only) and which derived values the stack sets over; nothing without a size or profile."""
    size, profile = config.get(f"{namespace}:size"), config.get(f"{namespace}:profile")
    if not size and not profile:
        return []
    cloud = config.get(f"{namespace}:cloud", "")
    values = {key: found for key, found in derived(size if size in SIZE_NAMES else None,
                                                    profile if profile in PROFILE_NAMES else None).items()
              if cloud in CLOUDS_READING.get(key, (cloud,))}
    is_set = {key.split(":", 1)[1] for key in config if key.startswith(namespace + ":")}
    lines = ["set: " + ", ".join(sorted(is_set))]
    for source, name in (("size", size), ("profile", profile or DEFAULT_PROFILE)):
        if name is None:
            lines.append("derived from size: nothing (no size set: the defaults)")
            continue
        shown = [f"{key}={value}" for key, (value, came) in sorted(values.items())
                 if came == source and key not in is_set]
        lines.append(f"derived from {source} {name}: " + (", ".join(shown) or "nothing (the defaults)"))
    if overridden := sorted(key for key in values if key in is_set):
        lines.append("set over a derived value: " + ", ".join(overridden))
    return lines


def markdown_table() -> str:
    """docs/pulumi.md's "Size and profile" table, from this table (a test holds the page equal to it)."""
    columns = [*(f"size `{size}`" for size in SIZE_NAMES), *(f"profile `{p}`" for p in PROFILE_NAMES)]
    lines = ["| key | clouds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for key in sorted(derived_keys()):
        cells = [f"`{sized(size)[key]}`" if key in sized(size) else "" for size in SIZE_NAMES]
        cells += [f"`{STACK_PROFILES[p][key]}`" if key in STACK_PROFILES[p] else "" for p in PROFILE_NAMES]
        clouds = ", ".join(CLOUDS_READING.get(key, ("all",)))
        lines.append(f"| `{key}` | {clouds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
