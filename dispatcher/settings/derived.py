"""What `VOICEFLEET_SIZE` and `VOICEFLEET_PROFILE` set the defaults of. A value set explicitly wins.

Sizes are a deployment's scale: sessions at once, the warm reserve's bounds, the connection caps
that must stay above them (`MAX_CONNECTIONS` above `BOT_CHANNEL_MAX_CONNECTIONS` + `SESSION_WAITS`;
the server also holds it under half the descriptor limit), and each provider's bot size, in pairs
every provider accepts (ACI's CPU/GiB, Modal's cores/MiB, Fly's memory beside its four shared CPUs).
Not ECS: its bot's size is the stack's task definition, and ECS_TASK_VCPU only prices it for the
reserve's cost, so deriving it would misreport the cost, never resize a task.
`small` is the defaults themselves. A profile is how strict a deployment is: `prod` logs JSON, needs
client keys and refuses to start on a misspelt setting (dispatcher/settings/typos.py)."""

from __future__ import annotations

from collections.abc import Mapping

SIZES: dict[str, dict[str, str]] = {
    "small": {
        "MAX_CONCURRENT_SESSIONS": "10", "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "10",
        "BOT_CHANNEL_MAX_CONNECTIONS": "1000", "SESSION_WAITS": "1000", "MAX_CONNECTIONS": "4000",
        "ACI_CPU": "1", "ACI_MEMORY_GB": "2",
        "MODAL_CPU": "1", "MODAL_MEMORY_MB": "2048", "FLY_GUEST_MEMORY_MB": "1024",
    },
    "medium": {
        "MAX_CONCURRENT_SESSIONS": "100", "RESERVE_MIN_IDLE": "2", "RESERVE_MAX_IDLE": "20",
        "BOT_CHANNEL_MAX_CONNECTIONS": "1000", "SESSION_WAITS": "1000", "MAX_CONNECTIONS": "4000",
        "ACI_CPU": "2", "ACI_MEMORY_GB": "4",
        "MODAL_CPU": "2", "MODAL_MEMORY_MB": "4096", "FLY_GUEST_MEMORY_MB": "2048",
    },
    "large": {
        "MAX_CONCURRENT_SESSIONS": "500", "RESERVE_MIN_IDLE": "5", "RESERVE_MAX_IDLE": "50",
        "BOT_CHANNEL_MAX_CONNECTIONS": "2000", "SESSION_WAITS": "2000", "MAX_CONNECTIONS": "8000",
        "ACI_CPU": "4", "ACI_MEMORY_GB": "8",
        "MODAL_CPU": "4", "MODAL_MEMORY_MB": "8192", "FLY_GUEST_MEMORY_MB": "4096",
    },
}
PROFILES: dict[str, dict[str, str]] = {
    "dev": {},
    "prod": {"LOG_FORMAT": "json", "DASHBOARD_ENABLED": "0"},
}
DEFAULT_PROFILE = "dev"


def profile_problems(env: Mapping[str, str], profile: str) -> list[str]:
    """What a profile requires beyond the parsers' own rules: `prod` serves callers with keys only, even
    on a loopback address (where the parsers let a keyless laptop in)."""
    if profile == "prod" and not env.get("DISPATCHER_API_KEYS", "").strip():
        return ["VOICEFLEET_PROFILE=prod needs DISPATCHER_API_KEYS: set the callers' keys (from a secret store)"]
    return []


def derived(size: str | None, profile: str) -> Mapping[str, str]:
    """The defaults a size and a profile imply (names already checked by dispatcher/settings/sources.py)."""
    return {**(SIZES[size] if size else {}), **PROFILES[profile]}
