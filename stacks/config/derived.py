"""What a stack's `size` and `profile` set the defaults of: the same names as the dispatcher's
VOICEFLEET_SIZE and VOICEFLEET_PROFILE (dispatcher/settings/derived.py), whose table also gives the
values both share (sessions at once, the reserve's bounds). A key the stack sets wins.

A size is a deployment's scale: the bots' and the dispatcher's machines on each cloud, the dispatcher's
replicas on AWS (three share a store, so `large` needs the store's secrets) and the sessions it admits.
`small` is the defaults themselves. A profile is how careful a deployment is: `prod` protects stateful
resources, keeps logs, secrets and images longer, spreads AWS over three zones and watches its
containers, turns the bot channel on (so the warm reserve), and on AWS and GCP holds the bot image to
400 MB and keeps no reserve buffer per session (docs/reserve.md, "Recommended defaults"); `dev` is the
defaults. A cloud derives what it refuses otherwise (k8s runs every bot over the channel). Irreversible
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
        # Azure: three replicas kept running, as AWS's three dispatchers (so a store), six at most.
        "dispatcherMinReplicas": "3", "dispatcherMaxReplicas": "6",
    },
}
STACK_PROFILES: dict[str, dict[str, str]] = {
    "dev": {},
    "prod": {
        "environment": "prod", "protect": "true", "imageRetentionCount": "50",
        "azCount": "3", "containerInsights": "true", "logRetentionDays": "90", "secretRecoveryDays": "30",  # AWS
        "azureLogRetentionDays": "90",
        "botChannel": "true",  # the warm reserve: bots dial the dispatcher's channel (its token the stack's own)
        # Every Fargate or Compute Engine cold start pulls the bot image; their reserve needs no buffer.
        "botImageBudgetMb": "400", "reserveBuffer": "0",
    },
}
# What a cloud derives whatever the size and profile: the only value it accepts (a k8s bot pod takes its
# session over the channel: stacks/config/k8s.py refuses botChannel false).
STACK_CLOUDS: dict[str, dict[str, str]] = {"k8s": {"botChannel": "true"}}
# Keys whose unset value the program computes from others (stacks/config/channel.py risen_instances): on
# GCP with the channel, the Cloud Run instances the sessions need where the defaults are too few.
COMPUTED = ("dispatcherMinInstances", "dispatcherMaxInstances")
Source = Literal["set", "cloud", "size", "profile", "default"]
# The clouds a derived value applies to (absent: every cloud); on the others the key keeps its default.
# The plan shows a stack its own cloud's.
DERIVED_ON: dict[str, tuple[str, ...]] = {
    "botCpu": ("aws", "azure"), "botMemory": ("aws", "azure"), "dispatcherCpu": ("aws",), "dispatcherCount": ("aws",),
    "dispatcherMemory": ("aws", "gcp", "azure"), "botMachineType": ("gcp",), "botDiskGb": ("gcp",),
    "k8sBotCpu": ("k8s",), "k8sBotMemory": ("k8s",), "azCount": ("aws",), "containerInsights": ("aws",),
    "logRetentionDays": ("aws",), "secretRecoveryDays": ("aws",), "azureLogRetentionDays": ("azure",),
    "botImageBudgetMb": ("aws", "gcp"), "reserveBuffer": ("aws", "gcp"),
    "dispatcherMinReplicas": ("azure",), "dispatcherMaxReplicas": ("azure",),
}


def sized(size: str) -> dict[str, str]:
    """Every key a size derives: the dispatcher's shared values, then the stacks' own."""
    return {**{key: SIZES[size][name] for key, name in SHARED_WITH_DISPATCHER.items()}, **STACK_SIZES[size]}


def derived(size: str | None, profile: str | None, *, cloud: str) -> dict[str, tuple[str, Source]]:
    """Each key derived on `cloud` and what derived it (a profile never sets what a size does; both
    agree with what a cloud derives)."""
    found: dict[str, tuple[str, Source]] = {}
    for key, value in STACK_CLOUDS.get(cloud, {}).items():
        found[key] = (value, "cloud")
    for key, value in (sized(size) if size else {}).items():
        found[key] = (value, "size")
    for key, value in STACK_PROFILES[profile or DEFAULT_PROFILE].items():
        found[key] = (value, "profile")
    return {key: value for key, value in found.items() if cloud in DERIVED_ON.get(key, (cloud,))}


def derived_keys() -> frozenset[str]:
    """Every key some cloud, size or profile derives."""
    return frozenset(k for size in SIZE_NAMES for k in sized(size)) | frozenset(
        k for profile in PROFILE_NAMES for k in STACK_PROFILES[profile]) | frozenset(
        k for keys in STACK_CLOUDS.values() for k in keys) | frozenset(COMPUTED)


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
    from stacks.config.channel import risen_instances  # the channel's arithmetic, only for a GCP plan
    from stacks.config.reader import DEFAULTS

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


def markdown_table() -> str:
    """docs/pulumi.md's "Size and profile" table, from this table (a test holds the page equal to it)."""
    columns = [*(f"size `{size}`" for size in SIZE_NAMES), *(f"profile `{p}`" for p in PROFILE_NAMES),
               "its cloud"]
    lines = ["| key | clouds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for key in sorted(derived_keys() - set(COMPUTED)):  # the computed ones: a formula, in the page's prose
        cells = [f"`{sized(size)[key]}`" if key in sized(size) else "" for size in SIZE_NAMES]
        cells += [f"`{STACK_PROFILES[p][key]}`" if key in STACK_PROFILES[p] else "" for p in PROFILE_NAMES]
        cells.append(", ".join(f"`{found[key]}` on {cloud}" for cloud, found in STACK_CLOUDS.items() if key in found))
        clouds = ", ".join(DERIVED_ON.get(key, ("all",)))
        lines.append(f"| `{key}` | {clouds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
