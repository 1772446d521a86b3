"""The Azure stack's own keys (`cloud: azure`): subscription, location, network and dispatcher sizes.

The dispatcher runs on Azure Container Apps' consumption plan, whose sizes pair each CPU with twice
its memory in GiB (0.25 vCPU / 0.5 GiB up to 4 vCPU / 8 GiB, limits.CONTAINER_APPS_SIZES); the stack
derives the CPU from `dispatcherMemory`. More than one replica shares a coordination store (Azure
Managed Redis, stacks/azure/store.py) and needs `storeMessageSecret`; its password is the cache's own
access key, written to Key Vault by the stack, so `storePassword` is refused here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

import pulumi

from stacks.config import aci_cells, bot_permissions, limits, store_ceiling_notes
from stacks.config import store as store_settings
from stacks.config.reader import Reader

if TYPE_CHECKING:
    from stacks.config.model import AzureSettings, Settings

# Azure subscription ids are GUIDs; locations are lowercase names like westeurope.
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LOCATION = re.compile(r"^[a-z][a-z0-9]{2,30}$")
_ACTION_GROUP = re.compile(r"^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/microsoft\.insights/"
                           r"actionGroups/[^/]+$", re.IGNORECASE)


def load(cfg: Reader, settings: Settings) -> AzureSettings:
    from stacks.config.model import AzureSettings

    provider = Reader("azure-native")
    subscription = provider.string("subscriptionId", required=True)
    if not _GUID.match(subscription.lower()):
        raise provider.fail("subscriptionId", f"must be a subscription id (a GUID; got {subscription!r})")
    location = provider.string("location", required=True)
    if not _LOCATION.match(location):
        raise provider.fail("location", f"must be an Azure location name like westeurope (got {location!r})")
    if settings.regions is not None:
        raise cfg.fail("regions", "is not supported on azure yet: the front door and the regions' URLs are built "
                                  "for AWS and GCP (docs/regions.md)")
    if settings.turn is not None and settings.turn.mode == "managed" and settings.turn.ssh_public_key is None:
        # Azure refuses a Linux VM without a password or a key; no rule of the relay admits SSH.
        raise cfg.fail("turnSshPublicKey", "is required with turn: managed on azure (Azure requires a credential on "
                                           "the relay's Linux VM; no network rule admits SSH): pulumi config set "
                                           "turnSshPublicKey \"$(cat ~/.ssh/id_ed25519.pub)\"")
    memory = settings.dispatcher_memory
    if memory not in limits.CONTAINER_APPS_SIZES:
        shown = ", ".join(str(m) for m in limits.CONTAINER_APPS_SIZES)
        raise cfg.fail("dispatcherMemory", f"must be a Container Apps consumption size on azure ({shown} MiB, "
                                           f"0.25 vCPU per 512 MiB; got {memory})")
    minimum = cfg.integer("dispatcherMinReplicas", minimum=0, maximum=limits.CONTAINER_APPS_MAX_REPLICAS)
    maximum = cfg.integer("dispatcherMaxReplicas", minimum=1, maximum=limits.CONTAINER_APPS_MAX_REPLICAS)
    if maximum < minimum:
        raise cfg.fail("dispatcherMaxReplicas", f"must be at least dispatcherMinReplicas={minimum} (got {maximum})")
    if settings.secrets.store_password is not None or settings.secrets.store_previous_password is not None:
        raise cfg.fail(store_settings.PASSWORD_KEY, "is not used on azure: the dispatcher signs in to Azure Managed "
                                                    "Redis with the cache's own access key, which the stack keeps in "
                                                    f"Key Vault; pulumi config rm {store_settings.PASSWORD_KEY}")
    cells = aci_cells.cells(cfg, subscription.lower(), location)
    # Several replicas share a store; so do the cells, one replica or more (each session's cell is recorded there).
    store = maximum > 1 or bool(cells)
    if maximum > 1 and cfg.raw("dispatcherMaxReplicas") is None:
        _warn_derived_store(cfg, minimum, maximum)
    if not store and settings.secrets.store_accepted_message_secret is not None:
        raise cfg.fail(store_settings.ACCEPTED_MESSAGE_SECRET_KEY,
                       f"is set but dispatcherMaxReplicas={maximum} has no coordination store: "
                       f"pulumi config rm {store_settings.ACCEPTED_MESSAGE_SECRET_KEY}")
    retention = cfg.integer("azureLogRetentionDays", minimum=limits.LOG_ANALYTICS_RETENTION_DAYS[0],
                            maximum=limits.LOG_ANALYTICS_RETENTION_DAYS[1])
    bot_cpu = cfg.integer("botCpu", minimum=1)
    bot_memory = cfg.integer("botMemory", minimum=1)
    _aci_size(cfg, bot_cpu, bot_memory)
    action_group = cfg.optional("alarmActionGroupId")
    if action_group is not None and not _ACTION_GROUP.match(action_group):
        raise cfg.fail("alarmActionGroupId", "must be an action group's resource id (/subscriptions/<id>/"
                                             "resourceGroups/<group>/providers/microsoft.insights/actionGroups/"
                                             f"<name>; got {action_group!r})")
    bot_permissions.check_azure_scopes(cfg, settings.bot_permissions, subscription.lower(), settings.prefix)
    return AzureSettings(
        subscription_id=subscription.lower(),
        location=location,
        vnet_cidr=_cidr(cfg, "azureVnetCidr"),
        dispatcher_cpu=memory / limits.CONTAINER_APPS_MIB_PER_CPU,
        dispatcher_min_replicas=minimum,
        dispatcher_max_replicas=maximum,
        store=store,
        bot_cpu=bot_cpu,
        bot_memory=bot_memory,
        log_retention_days=retention,
        alarm_action_group_id=action_group,
        key_vault_allowed_ips=_addresses(cfg, "azureKeyVaultAllowedIps"),
        key_vault_retention_days=cfg.integer("azureKeyVaultRetentionDays", minimum=limits.KEY_VAULT_SOFT_DELETE_DAYS[0],
                                             maximum=limits.KEY_VAULT_SOFT_DELETE_DAYS[1]),
        key_vault_purge_protection=cfg.boolean("azureKeyVaultPurgeProtection"),
        aci_cells=aci_cells.cells_setting(cells),
        store_sku=store_ceiling_notes.sku(cfg, settings.environment),
    )


def _aci_size(cfg: Reader, cpu: int, memory: int) -> None:
    """Bot container groups: CPU in units of 1024 per core (as on AWS), memory in MiB, whole GiB
    tenths on ACI; a group takes at most 4 cores and 16 GiB in most regions (limits.py)."""
    if cpu % 256 or not 256 <= cpu <= limits.ACI_MAX_CPU_UNITS:
        raise cfg.fail("botCpu", f"must be 256..{limits.ACI_MAX_CPU_UNITS} in steps of 256 on azure (got {cpu})")
    if memory % 512 or not 512 <= memory <= limits.ACI_MAX_MEMORY_MIB:
        raise cfg.fail("botMemory", f"must be 512..{limits.ACI_MAX_MEMORY_MIB} MiB in steps of 512 on azure "
                                    f"(got {memory})")


def _addresses(cfg: Reader, name: str) -> tuple[str, ...]:
    """Public IPv4 addresses or ranges (Key Vault's firewall takes nothing else)."""
    found = []
    for value in cfg.string_list(name):
        try:
            network = ipaddress.IPv4Network(value)
        except ValueError:
            raise cfg.fail(name, f"must list IPv4 addresses or CIDR ranges like 52.174.10.7 (got {value!r})") from None
        if not network.is_global:
            raise cfg.fail(name, f"must list public addresses (the network reaches Key Vault through its private "
                                 f"endpoint; got {value!r})")
        found.append(str(network.network_address) if network.prefixlen == 32 else str(network))
    return tuple(found)


def _cidr(cfg: Reader, name: str) -> str:
    value = cfg.string(name)
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        raise cfg.fail(name, f"must be an IPv4 CIDR block like 10.60.0.0/16 (got {value!r})") from None
    if network.prefixlen > 20:
        # Three /23 subnets at least: Container Apps' own infrastructure subnet (/23 minimum on the
        # consumption-only environment), the bots', and the store's private endpoint.
        raise cfg.fail(name, f"must be /20 or larger (Container Apps needs a /23 of it; got {value!r})")
    return str(network)


def _warn_derived_store(cfg: Reader, minimum: int, maximum: int) -> None:
    """`size: large` derives several replicas, so a store: a stack that ran one replica before gains an Azure
    Managed Redis on its next `up`, with no key of its own changed. Said at every preview while the keys are
    unset, since the program cannot tell a first `up` that wants it from an old stack that does not."""
    pulumi.log.warn(f"size derives dispatcherMinReplicas={minimum} and dispatcherMaxReplicas={maximum} on azure: the "
                    "replicas share an Azure Managed Redis store, which an `up` adds to a stack that ran one replica "
                    "(protected with profile: prod, so taking it out again needs pulumi state unprotect). To keep one "
                    "replica and no store: pulumi config set dispatcherMinReplicas 1; pulumi config set "
                    "dispatcherMaxReplicas 1 (docs/pulumi.md, \"A stack made before these were derived\")")
