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
