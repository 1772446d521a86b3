"""Which stack key becomes which dispatcher setting: the table docs/pulumi.md shows and `voicefleet
config explain --stack` names a value's source from.

Built from the tables the config modules already keep (the reserve's, the carriers', the required and
optional secrets, the observability and store names), plus the keys the cloud components map one by
one. tests/infra/config/test_dispatcher_keys.py holds it to the programs: every entry names a
catalogue setting, and every stack key whose value reaches an example stack's dispatcher environment
is in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config import admin_keys, phone, reserve, store
from stacks.config.bot_env import OTLP_ENDPOINT
from stacks.config.channel import TOKEN_KEY as CHANNEL_TOKEN_KEY
from stacks.config.observability import DASHBOARD_ENABLED, PROFILE, WEBHOOK_SECRET, WEBHOOK_URL
from stacks.config.regions import ACCEPTED_SECRET_KEY as REGION_ACCEPTED_SECRET_KEY
from stacks.config.regions import SECRET_KEY as REGION_SECRET_KEY
from stacks.config.turn import CREDENTIALS_KEY as TURN_CREDENTIALS_KEY

AS_IS = "its value"
SECRET = "its value, by reference (a secret)"  # noqa: S105 - a description, not a secret


@dataclass(frozen=True)
class KeySetting:
    """One stack key (`aws:region` for another namespace's) and the dispatcher setting it sets."""

    key: str
    setting: str
    how: str = AS_IS  # AS_IS, SECRET, or how the value is derived from the key's
    clouds: tuple[str, ...] = ()  # the clouds that map it; () every cloud
    # The keys the program derives the setting from while this key is at its default (gcpZone "" is
    # `<gcp:region>-a`): an unset key's default is then not where the value came from.
    fallback: tuple[str, ...] = ()

    @property
    def same_value(self) -> bool:
        """The setting holds the key's own value (a number as the dispatcher writes it back)."""
        return self.how == AS_IS


_SECRETS = {"dailyApiKey": "DAILY_API_KEY", "dispatcherApiKeys": "DISPATCHER_API_KEYS",
            admin_keys.KEY: admin_keys.VARIABLE, CHANNEL_TOKEN_KEY: "BOT_CHANNEL_TOKEN",
            "turnSharedSecret": "TURN_SHARED_SECRET",
            store.MESSAGE_SECRET_KEY: store.MESSAGE_SECRET_VARIABLE,
            store.ACCEPTED_MESSAGE_SECRET_KEY: store.ACCEPTED_MESSAGE_SECRET_VARIABLE,
            "webhookSecret": WEBHOOK_SECRET,
            REGION_SECRET_KEY: "REGION_SECRET", REGION_ACCEPTED_SECRET_KEY: "REGION_ACCEPTED_SECRET",
            **phone.PHONE_SECRET_KEYS}

ENTRIES: tuple[KeySetting, ...] = (
    KeySetting("maxConcurrentSessions", "MAX_CONCURRENT_SESSIONS"),
    KeySetting("maxSessionSeconds", "MAX_SESSION_SECONDS"),
    *(KeySetting(key, setting) for key, setting in reserve.KEYS.items()),
    KeySetting("profile", PROFILE, "its value when `prod` (`dev` is the dispatcher's default)"),
    KeySetting("dashboardEnabled", DASHBOARD_ENABLED, "`1` when true"),
    KeySetting("otelExporterOtlpEndpoint", OTLP_ENDPOINT),
    KeySetting("webhookUrl", WEBHOOK_URL),
    KeySetting(TURN_CREDENTIALS_KEY, "TURN_CREDENTIALS_PER_KEY", "its value, or derived from turnTotalQuota when 0",
               fallback=("turnTotalQuota",)),
    KeySetting("region", "REGION"),
    KeySetting("regions", "REGIONS", "its regions' names and URLs"),
    KeySetting("regionSpillBudgetMs", "REGION_SPILL_BUDGET_MS"),
    KeySetting("regionHoldForNeighbours", "REGION_HOLD_FOR_NEIGHBOURS", "`1` when true"),
    KeySetting("recording", "RECORDING"),
    KeySetting("recordingTranscript", "RECORDING_TRANSCRIPT"),
    KeySetting("recordingRetentionDays", "RECORDING_RETENTION_DAYS"),
    KeySetting("recordingRules", "RECORDING_RULES"),
    # AWS
    KeySetting("aws:region", "AWS_REGION", clouds=("aws",)),
    KeySetting("keepAliveSeconds", "KEEP_ALIVE_SECONDS", clouds=("aws",)),
    KeySetting("ecsCapacityProviders", "ECS_CAPACITY_PROVIDERS", clouds=("aws",)),
    KeySetting("botCpu", "ECS_TASK_VCPU", "CPU units / 1024 (vCPUs)", clouds=("aws",)),
    KeySetting("botMemory", "ECS_TASK_MEMORY_GB", "MiB / 1024 (GiB)", clouds=("aws",)),
    KeySetting("dispatcherCount", "BOT_CHANNEL_MAX_CONNECTIONS",
               "with botChannelToken: the bots' channels per surviving replica", clouds=("aws",)),
    # GCP
    KeySetting("gcp:project", "GCE_PROJECT", clouds=("gcp",)),
    KeySetting("gcpZone", "GCE_ZONE", "its value, or `<gcp:region>-a`", clouds=("gcp",), fallback=("gcp:region",)),
    KeySetting("botMachineType", "GCE_MACHINE_TYPE", clouds=("gcp",)),
    # Azure
    KeySetting("azure-native:location", "AZURE_LOCATION", clouds=("azure",)),
    KeySetting("azure-native:subscriptionId", "AZURE_SUBSCRIPTION_ID", clouds=("azure",)),
    KeySetting("botCpu", "ACI_CPU", "CPU units / 1024 (vCPUs)", clouds=("azure",)),
    KeySetting("botMemory", "ACI_MEMORY_GB", "MiB / 1024 (GiB)", clouds=("azure",)),
    # Kubernetes
    KeySetting("k8sBotImage", "BOT_IMAGE", clouds=("k8s",)),
    KeySetting("k8sBotCpu", "K8S_BOT_CPU", clouds=("k8s",)),
    KeySetting("k8sBotMemory", "K8S_BOT_MEMORY", clouds=("k8s",)),
    KeySetting("k8sMode", "K8S_MODE", "its value when `agent-sandbox`", clouds=("k8s",)),
    KeySetting("k8sRuntimeClass", "K8S_RUNTIME_CLASS", clouds=("k8s",)),
    KeySetting("k8sStoreUrl", store.URL_VARIABLE, SECRET, clouds=("k8s",)),
    # Azure's managed store signs in with the key Azure gives it, not a stack key.
    KeySetting(store.PASSWORD_KEY, store.PASSWORD_VARIABLE, SECRET, clouds=("aws", "k8s")),
    *(KeySetting(key, setting, SECRET) for key, setting in _SECRETS.items()),
)


def keys_of(setting: str, cloud: str) -> list[KeySetting]:
    """The entries that set `setting` on `cloud`."""
    return [entry for entry in ENTRIES if entry.setting == setting and (not entry.clouds or cloud in entry.clouds)]


def markdown_table() -> str:
    """docs/pulumi.md's "Stack keys and the dispatcher's settings" table (a test holds the page equal to it)."""
    lines = ["| stack key | dispatcher setting | how | clouds |", "|---|---|---|---|"]
    for entry in sorted(ENTRIES, key=lambda e: (e.key.lower(), e.setting)):
        lines.append(f"| `{entry.key}` | `{entry.setting}` | {entry.how} | {', '.join(entry.clouds) or 'all'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
