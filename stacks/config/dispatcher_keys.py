"""Which stack key becomes which dispatcher setting, and how its value is written: the one table the
clouds' dispatcher environments are built from (`plain_environment`, `secret_settings`), docs/pulumi.md
shows and `voicefleet config explain --stack` names a value's source from.

Each entry's `value` is its setting's value in a stack's Settings (None: not set, the dispatcher's own
default). A key whose setting is its value as the dispatcher reads it (AS_IS) reads it back; a derived
one has a small named function beside the table. A SECRET entry has no value here: the table says
which secrets the dispatcher takes, and each cloud hands them by reference its own way. Adding a key's
setting is one line here; every cloud the entry names then writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from dispatcher.machines.k8s.settings import AGENT_SANDBOX
from dispatcher.settings.derived import DEFAULT_PROFILE
from stacks.config import (
    calling_out,
    calling_out_telnyx,
    channel,
    channel_capacity,
    k8s_cells,
    phone,
    phone_transfers,
    plivo_account,
    reserve,
    store,
    switches,
    whatsapp,
)
from stacks.config.bot_env import OTLP_ENDPOINT
from stacks.config.call_callers import POLICY_SUFFIXES
from stacks.config.channel import CHANNEL_KEY
from stacks.config.channel import TOKEN_KEY as CHANNEL_TOKEN_KEY
from stacks.config.observability import DASHBOARD_ENABLED, PROFILE, WEBHOOK_SECRET, WEBHOOK_URL
from stacks.config.recording import USAGE_BESIDE_RECORDINGS, USAGE_FILES_KEY
from stacks.config.regions import ACCEPTED_SECRET_KEY as REGION_ACCEPTED_SECRET_KEY
from stacks.config.regions import SECRET_KEY as REGION_SECRET_KEY
from stacks.config.settings import REQUIRED_SECRET_KEYS
from stacks.config.turn import CREDENTIALS_KEY as TURN_CREDENTIALS_KEY

if TYPE_CHECKING:
    from stacks.config.model import AwsSettings, AzureSettings, GcpSettings, KubernetesSettings, Settings
    from stacks.config.recording import RecordingSettings

AS_IS = "its value"
SECRET = "its value, by reference (a secret)"  # noqa: S105 - a description, not a secret

Value = Callable[["Settings"], "str | None"]
S = TypeVar("S")


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
    # The other keys the value is computed from, whatever this key holds (the channel's caps: the
    # sessions and the reserve spread over dispatcherCount, and only with the bot channel).
    inputs: tuple[str, ...] = ()
    value: Value | None = None  # the setting's value in a stack's settings, None unset; SECRET: none here

    def __post_init__(self) -> None:
        if (self.value is None) != (self.how == SECRET):
            raise ValueError(f"{self.key} -> {self.setting}: a secret has no value here, every other entry one")

    @property
    def same_value(self) -> bool:
        """The setting holds the key's own value (a number as the dispatcher writes it back)."""
        return self.how == AS_IS

    def applies_to(self, cloud: str) -> bool:
        return not self.clouds or cloud in self.clouds


def _present(section: S | None) -> S:
    """A cloud's own settings: an entry of that cloud only is read on a stack of it, where they are set."""
    assert section is not None
    return section


def _aws(settings: Settings) -> AwsSettings:
    return _present(settings.aws)


def _gcp(settings: Settings) -> GcpSettings:
    return _present(settings.gcp)


def _azure(settings: Settings) -> AzureSettings:
    return _present(settings.azure)


def _k8s(settings: Settings) -> KubernetesSettings:
    return _present(settings.kubernetes)


def _written(key: str, setting: str, how: str = AS_IS, clouds: tuple[str, ...] = (), *,
             by: Callable[[Settings], Mapping[str, str] | None], inputs: tuple[str, ...] = ()) -> KeySetting:
    """An entry whose value is its setting's in what `by` writes (None or the setting left out: unset), for
    settings a checked parse writes together: the reserve's, the regions' planner's, the channel's caps."""
    return KeySetting(key, setting, how, clouds, inputs=inputs,
                      value=lambda settings: (by(settings) or {}).get(setting))


def _reserve(settings: Settings) -> Mapping[str, str]:
    """RESERVE_* as the dispatcher's own `ReserveSettings.to_env` writes them (no schedule: none)."""
    return settings.reserve.to_env()


def _planner(settings: Settings) -> Mapping[str, str] | None:
    """REGION_SPILL_BUDGET_MS and REGION_HOLD_FOR_NEIGHBOURS as the stack checked them, with regions only."""
    return None if settings.regions is None else settings.regions.planner


def _channel_caps(settings: Settings) -> Mapping[str, str] | None:
    """With the channel, each AWS replica's caps from dispatcherCount (stacks/config/channel_capacity.py)."""
    if not channel.enabled(settings):
        return None
    return channel_capacity.dispatcher_environment(settings, _aws(settings).dispatcher_count)


# The derived values, one function each (the entry's `how` says it in words).
def _profile(settings: Settings) -> str | None:
    return settings.observability.profile if settings.observability.profile != DEFAULT_PROFILE else None


def _dashboard(settings: Settings) -> str | None:
    return "1" if settings.observability.dashboard else None


def _switch(setting: str) -> Value:
    """A feature switch's setting: `1` when its key is true, else left out (stacks/config/switches.py)."""
    return lambda settings: settings.switches.get(setting)


def _phone(setting: str) -> Value:
    """A plain phone setting: its key's value as the dispatcher reads it, when set (stacks/config/model.py phone)."""
    return lambda settings: settings.phone.get(setting)


def _turn_credentials(settings: Settings) -> str | None:
    return None if settings.turn is None else str(settings.turn.credentials_per_key)


def _units(read: Callable[[Settings], int]) -> Value:
    """CPU units or MiB / 1024: vCPUs or GiB, as the reserve's price table reads them (reserve/prices.py)."""
    return lambda settings: f"{read(settings) / 1024:g}"


def _gce(read: Callable[[GcpSettings], str]) -> Value:
    """A `gce` provider's setting: botRuntime cloudrun writes the `cloudrun` provider's instead."""
    return lambda settings: read(_gcp(settings)) if _gcp(settings).bot_runtime == "gce" else None


def _usage_files(settings: Settings) -> str | None:
    """USAGE_FILES=recordings when the stack records and puts the file beside (refused otherwise)."""
    return USAGE_BESIDE_RECORDINGS if settings.recording is not None and settings.recording.usage_files else None


def _recording(read: Callable[[RecordingSettings], object]) -> Value:
    """A recording setting, with recording on only."""
    return lambda settings: None if settings.recording is None else str(read(settings.recording))


_SECRETS = {**REQUIRED_SECRET_KEYS, CHANNEL_TOKEN_KEY: "BOT_CHANNEL_TOKEN",
            "turnSharedSecret": "TURN_SHARED_SECRET",
            store.MESSAGE_SECRET_KEY: store.MESSAGE_SECRET_VARIABLE,
            store.ACCEPTED_MESSAGE_SECRET_KEY: store.ACCEPTED_MESSAGE_SECRET_VARIABLE,
            "webhookSecret": WEBHOOK_SECRET,
            REGION_SECRET_KEY: "REGION_SECRET", REGION_ACCEPTED_SECRET_KEY: "REGION_ACCEPTED_SECRET",
            **phone.PHONE_SECRET_KEYS}
_PER_REPLICA = "with the bot channel: the bots' channels per surviving replica"
_CHANNEL_INPUTS = ("maxConcurrentSessions", "reserveMaxIdle", CHANNEL_KEY)

ENTRIES: tuple[KeySetting, ...] = (
    KeySetting("maxConcurrentSessions", "MAX_CONCURRENT_SESSIONS", value=lambda s: str(s.max_concurrent_sessions)),
    KeySetting("maxSessionSeconds", "MAX_SESSION_SECONDS", value=lambda s: str(s.max_session_seconds)),
    *(_written(key, setting, by=_reserve) for key, setting in reserve.KEYS.items()),
    KeySetting("profile", PROFILE, "its value when `prod` (`dev` is the dispatcher's default)", value=_profile),
    KeySetting("dashboardEnabled", DASHBOARD_ENABLED, "`1` when true", value=_dashboard),
    KeySetting("otelExporterOtlpEndpoint", OTLP_ENDPOINT, value=lambda s: s.observability.otlp_endpoint or None),
    KeySetting("webhookUrl", WEBHOOK_URL, value=lambda s: s.observability.webhook_url or None),
    KeySetting(TURN_CREDENTIALS_KEY, "TURN_CREDENTIALS_PER_KEY", "its value, or derived from turnTotalQuota when 0",
               fallback=("turnTotalQuota",), value=_turn_credentials),
    KeySetting("region", "REGION", value=lambda s: None if s.regions is None else s.regions.here),
    KeySetting("regions", "REGIONS", "its regions' names and URLs",
               value=lambda s: None if s.regions is None else s.regions.listing),
    _written("regionSpillBudgetMs", "REGION_SPILL_BUDGET_MS", by=_planner),
    _written("regionHoldForNeighbours", "REGION_HOLD_FOR_NEIGHBOURS", "`1` when true", by=_planner),
    *(KeySetting(key, setting, "`1` when true", value=_switch(setting)) for key, setting in switches.SWITCHES.items()),
    KeySetting("recording", "RECORDING", value=_recording(lambda r: r.policy)),
    KeySetting("recordingTranscript", "RECORDING_TRANSCRIPT", value=_recording(lambda r: r.transcript)),
    KeySetting("recordingRetentionDays", "RECORDING_RETENTION_DAYS", value=_recording(lambda r: r.retention_days)),
    KeySetting("recordingRules", "RECORDING_RULES", value=_recording(lambda r: r.rules_text)),
    *(KeySetting(key, setting, "its list, comma-separated" if key.endswith(POLICY_SUFFIXES) else AS_IS,
                 value=_phone(setting)) for key, setting in {**calling_out.KEYS, **calling_out_telnyx.KEYS,
                                                                  **plivo_account.KEYS,
                                                                  **phone.PHONE_PLAIN_KEYS}.items()),
    KeySetting(phone_transfers.TARGETS_KEY, phone_transfers.TARGETS_VARIABLE, "its list, comma-separated",
               value=_phone(phone_transfers.TARGETS_VARIABLE)),
    KeySetting(phone_transfers.TIME_LIMIT_KEY, phone_transfers.TIME_LIMIT_VARIABLE,
               "its value unless 0 (0: the dispatcher's own)", value=_phone(phone_transfers.TIME_LIMIT_VARIABLE)),
    KeySetting(whatsapp.NUMBERS_KEY, whatsapp.NUMBERS_VARIABLE, "its phone number IDs' `ID=KEY_NAME[@RELEASE]`, "
               "comma-separated", value=_phone(whatsapp.NUMBERS_VARIABLE)),
    KeySetting(USAGE_FILES_KEY, "USAGE_FILES", "its value when `recordings` (`off` is the dispatcher's default)",
               value=_usage_files),
    # AWS
    KeySetting("aws:region", "AWS_REGION", clouds=("aws",), value=lambda s: _aws(s).region),
    KeySetting("keepAliveSeconds", "KEEP_ALIVE_SECONDS", clouds=("aws",),
               value=lambda s: str(_aws(s).keep_alive_seconds)),
    KeySetting("ecsCapacityProviders", "ECS_CAPACITY_PROVIDERS", clouds=("aws",),
               value=lambda s: _aws(s).capacity_providers),
    KeySetting("botCpu", "ECS_TASK_VCPU", "CPU units / 1024 (vCPUs)", clouds=("aws",),
               value=_units(lambda s: _aws(s).bot_cpu)),
    KeySetting("botMemory", "ECS_TASK_MEMORY_GB", "MiB / 1024 (GiB)", clouds=("aws",),
               value=_units(lambda s: _aws(s).bot_memory)),
    _written("dispatcherCount", "BOT_CHANNEL_MAX_CONNECTIONS", _PER_REPLICA, ("aws",), by=_channel_caps,
             inputs=_CHANNEL_INPUTS),
    _written("dispatcherCount", "MAX_CONNECTIONS", f"{_PER_REPLICA}, 3 sockets each and the session waits", ("aws",),
             by=_channel_caps, inputs=_CHANNEL_INPUTS),
    KeySetting("ecsCells", "ECS_CELLS", "the list, as JSON", clouds=("aws",),
               value=lambda s: _aws(s).ecs_cells or None),
    # GCP
    KeySetting("gcp:project", "GCE_PROJECT", clouds=("gcp",), value=_gce(lambda gcp: gcp.project)),
    KeySetting("gcpZone", "GCE_ZONE", "its value, or `<gcp:region>-a`", clouds=("gcp",), fallback=("gcp:region",),
               value=_gce(lambda gcp: gcp.zone)),
    KeySetting("botMachineType", "GCE_MACHINE_TYPE", clouds=("gcp",), value=_gce(lambda gcp: gcp.bot_machine_type)),
    KeySetting("cloudRunCells", "CLOUDRUN_CELLS", "the list, as JSON", clouds=("gcp",),
               value=lambda s: _gcp(s).cloud_run_cells or None),
    KeySetting("gceCells", "GCE_CELLS", "the list, as JSON", clouds=("gcp",),
               value=lambda s: _gcp(s).gce_cells or None),
    # Azure
    KeySetting("azure-native:location", "AZURE_LOCATION", clouds=("azure",), value=lambda s: _azure(s).location),
    KeySetting("azure-native:subscriptionId", "AZURE_SUBSCRIPTION_ID", clouds=("azure",),
               value=lambda s: _azure(s).subscription_id),
    KeySetting("aciCells", "ACI_CELLS", "the list, as JSON", clouds=("azure",),
               value=lambda s: _azure(s).aci_cells or None),
    KeySetting("botCpu", "ACI_CPU", "CPU units / 1024 (vCPUs)", clouds=("azure",),
               value=_units(lambda s: _azure(s).bot_cpu)),
    KeySetting("botMemory", "ACI_MEMORY_GB", "MiB / 1024 (GiB)", clouds=("azure",),
               value=_units(lambda s: _azure(s).bot_memory)),
    # Kubernetes
    KeySetting("k8sBotImage", "BOT_IMAGE", clouds=("k8s",), value=lambda s: _k8s(s).bot_image),
    KeySetting("k8sBotCpu", "K8S_BOT_CPU", clouds=("k8s",), value=lambda s: _k8s(s).bot_cpu),
    KeySetting("k8sBotMemory", "K8S_BOT_MEMORY", clouds=("k8s",), value=lambda s: _k8s(s).bot_memory),
    KeySetting("k8sMode", "K8S_MODE", "its value when `agent-sandbox`", clouds=("k8s",),
               value=lambda s: AGENT_SANDBOX if _k8s(s).mode == AGENT_SANDBOX else None),
    KeySetting("k8sRuntimeClass", "K8S_RUNTIME_CLASS", clouds=("k8s",), value=lambda s: _k8s(s).runtime_class or None),
    KeySetting("k8sStoreUrl", store.URL_VARIABLE, SECRET, clouds=("k8s",)),
    KeySetting("k8sCells", "K8S_CELLS", "the list, as JSON, without each cell's `secret`", clouds=("k8s",),
               value=lambda s: k8s_cells.cells_setting(_k8s(s).cells) or None),
    # Azure's managed store signs in with the key Azure gives it, not a stack key.
    KeySetting(store.PASSWORD_KEY, store.PASSWORD_VARIABLE, SECRET, clouds=("aws", "k8s")),
    *(KeySetting(key, setting, SECRET) for key, setting in _SECRETS.items()),
)


def keys_of(setting: str, cloud: str) -> list[KeySetting]:
    """The entries that set `setting` on `cloud`."""
    return [entry for entry in ENTRIES if entry.setting == setting and entry.applies_to(cloud)]


def plain_environment(settings: Settings) -> dict[str, str]:
    """The dispatcher's plain settings the stack's keys set on its cloud."""
    found: dict[str, str] = {}
    for entry in ENTRIES:
        value = entry.value(settings) if entry.value is not None and entry.applies_to(settings.cloud) else None
        if value is not None:
            found[entry.setting] = value
    return found


def secret_settings(cloud: str, stored: Collection[str]) -> tuple[str, ...]:
    """The secrets the dispatcher takes by reference on `cloud`: the table's, of those the stack stores
    (`stored`: its secret store's names, which hold only what is set and used, a store's with a store)."""
    return tuple(dict.fromkeys(entry.setting for entry in ENTRIES
                               if entry.how == SECRET and entry.applies_to(cloud) and entry.setting in stored))


def markdown_table() -> str:
    """docs/pulumi.md's "Stack keys and the dispatcher's settings" table (a test holds the page equal to it)."""
    lines = ["| stack key | dispatcher setting | how | clouds |", "|---|---|---|---|"]
    for entry in sorted(ENTRIES, key=lambda e: (e.key.lower(), e.setting)):
        lines.append(f"| `{entry.key}` | `{entry.setting}` | {entry.how} | {', '.join(entry.clouds) or 'all'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
