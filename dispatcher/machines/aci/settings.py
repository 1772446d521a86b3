"""`MACHINES=aci` settings, named as Azure's own tools name them (AZURE_SUBSCRIPTION_ID, AZURE_LOCATION…).

The limits are ARM's and ACI's published ones (machines_apis.md §8): writes refill at 10/s per
subscription and region (a bucket of 200), reads at 25/s (250), and creates plus deletes are at most
100 per 5 minutes and 300 per hour per region. The defaults take half the write and read rates (the
subscription's other tools share them) and a create budget that honours both windows at once:
a bucket of 83 refilled one per 18 s holds any 5 minutes to 83 + 17 = 100 and any hour to 83 + 200
< 300. Deletes draw on the same budget as creates (ACI counts both), so a session costs two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from dispatcher.channel.identity import identity_audience
from dispatcher.machines.aci.cell_settings import AciCell, aci_cells, subnet_subscription
from dispatcher.machines.call_timings import call_timings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError, api_endpoint, require
from voicefleet_settings.read import setting_float, setting_text

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
# The audience Entra issues ARM's tokens for (`<it>/.default`): Azure's, whatever ARM_ENDPOINT says
# (a proxy, a test fake); another cloud names its own (ARM_AUDIENCE).
DEFAULT_ARM_AUDIENCE = "https://management.azure.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# The newest stable Microsoft.ContainerInstance api-version in azure-rest-api-specs (2025-09-01 is
# newer but adds nothing used here); every ARM call must name one (400 MissingApiVersionParameter).
API_VERSION = "2023-05-01"
DEFAULT_CREATE_RATE = Rate(per_second=1 / 18, burst=83)
DEFAULT_WRITE_RATE = Rate(per_second=5.0, burst=50)
DEFAULT_READ_RATE = Rate(per_second=12.0, burst=100)
# Group names: 1–63 lowercase alphanumerics or '-', no consecutive '-' (the provider adds one after the prefix).
_PREFIX = re.compile(r"^(?!.*--)[a-z0-9][-a-z0-9]{0,28}[a-z0-9]$|^[a-z0-9]$")
_IMAGE_BY_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
ENV_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_]{0,61}[A-Za-z0-9])?$")  # ACI: 1–63, '_' not first or last


@dataclass(frozen=True)
class AciSettings:
    subscription_id: str
    resource_group: str
    location: str
    bot_image: str  # <registry>/<repository>@sha256:<digest>: a group runs exactly what was built
    registry_server: str = ""  # e.g. myregistry.azurecr.io; pulled with `registry_identity`
    registry_identity: str = ""  # resource id of the user-assigned identity with AcrPull
    subnet_id: str = ""  # a VNet subnet for the groups; empty: Azure's default outbound network
    cpu: float = 1.0
    memory_gb: float = 2.0
    prefix: str = "vf"
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    arm_audience: str = DEFAULT_ARM_AUDIENCE
    auth: str = "azure"  # "none": tests against a local fake only
    ca_bundle: str = ""  # a private CA for ARM_ENDPOINT (a test fake, Azure Stack Hub)
    timeout: float = 15.0
    retry_deadline: float = 20.0
    poll_seconds: float = 2.0
    lro_seconds: float = 120.0  # how long a create's or delete's async operation is followed
    create_rate: Rate = DEFAULT_CREATE_RATE
    write_rate: Rate = DEFAULT_WRITE_RATE
    read_rate: Rate = DEFAULT_READ_RATE
    identity_audience: str | None = None
    bot_settings: Mapping[str, str] = field(default_factory=dict)  # ACI_BOT_SETTINGS: plain `value`s, no secret
    webrtc_image: str | None = None  # ACI_BOT_IMAGE_WEBRTC: the SmallWebRTC bot, for `webrtc` sessions
    bot_secrets: Mapping[str, str] = field(default_factory=dict)  # ACI_BOT_SECRETS: variable → versioned secret URI
    # ACI_CELLS: the subscriptions groups spread over (aci/cells.py); empty: AZURE_SUBSCRIPTION_ID's alone.
    cells: tuple[AciCell, ...] = ()
    client_id: str = ""  # a cell's: the user-assigned identity its ARM calls sign in as ("": the dispatcher's)

    def image_for(self, transport: str) -> str:
        return self.webrtc_image if transport == "webrtc" and self.webrtc_image else self.bot_image

    @property
    def arm_resource(self) -> str:
        """What an ARM token is asked for: the resource (managed identity) or `<it>.default` (a scope)."""
        return self.arm_audience + "/"

    @property
    def groups_path(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                "/providers/Microsoft.ContainerInstance/containerGroups")

    def for_cell(self, cell: AciCell) -> AciSettings:
        """One cell's settings: its subscription, resource group and location, its own subnet where it
        names one (else the deployment's), the identity it signs in as, and its create budget."""
        return replace(self, subscription_id=cell.subscription_id, resource_group=cell.resource_group,
                       location=cell.location, subnet_id=cell.subnet_id or self.subnet_id, cells=(),
                       client_id=cell.client_id or "", create_rate=cell.create_budget(self.create_rate))

    def cell_create_rates(self) -> dict[str, Rate]:
        """Each cell's create budget by its name: what its `aci:<cell>` bucket refills at."""
        return {cell.name: cell.create_budget(self.create_rate) for cell in self.cells}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AciSettings:
        names = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_LOCATION", "ACI_BOT_IMAGE")
        required = require(env, names, "aci")
        image = required["ACI_BOT_IMAGE"]
        if not _IMAGE_BY_DIGEST.match(image):
            raise SettingsError(f"ACI_BOT_IMAGE={image!r} must name the image by digest (<registry>/<repo>@sha256:…)")
        prefix = setting_text(env, "ACI_GROUP_PREFIX")
        if not _PREFIX.match(prefix):
            raise SettingsError(f"ACI_GROUP_PREFIX={prefix!r} must be ≤ 30 lowercase letters, digits or '-', "
                                  "with no '-' at its end nor two in a row (ACI refuses such group names)")
        endpoint, auth = api_endpoint(env, "ARM_ENDPOINT", DEFAULT_ARM_ENDPOINT, "ACI_AUTH")
        if not endpoint.startswith("https://"):
            raise SettingsError(f"ARM_ENDPOINT={endpoint!r} must be https (a bearer token never goes over http)")
        audience = (setting_text(env, "ARM_AUDIENCE")).rstrip("/")
        if not audience.startswith("https://"):
            raise SettingsError(f"ARM_AUDIENCE={audience!r} must be the https URL Entra issues ARM tokens for "
                                f"(Azure's: {DEFAULT_ARM_AUDIENCE})")
        registry = setting_text(env, "ACI_REGISTRY_SERVER") or image.split("/", 1)[0]
        webrtc = setting_text(env, "ACI_BOT_IMAGE_WEBRTC") or None
        if webrtc is not None and not _IMAGE_BY_DIGEST.match(webrtc):
            raise SettingsError(f"ACI_BOT_IMAGE_WEBRTC={webrtc!r} must name the image by digest "
                                "(<registry>/<repo>@sha256:…)")
        return cls(
            subscription_id=required["AZURE_SUBSCRIPTION_ID"],
            resource_group=required["AZURE_RESOURCE_GROUP"],
            location=required["AZURE_LOCATION"],
            bot_image=image,
            registry_server=registry,
            registry_identity=setting_text(env, "ACI_REGISTRY_IDENTITY"),
            subnet_id=setting_text(env, "ACI_SUBNET_ID"),
            cpu=setting_float(env, "ACI_CPU"),
            memory_gb=setting_float(env, "ACI_MEMORY_GB"),
            prefix=prefix,
            arm_endpoint=endpoint,
            arm_audience=audience,
            auth=auth,
            ca_bundle=setting_text(env, "ACI_CA_BUNDLE"),
            **call_timings(env, "ACI"),
            lro_seconds=setting_float(env, "ACI_LRO_SECONDS"),
            create_rate=Rate.from_env(env, "ACI_CREATE"),
            write_rate=Rate.from_env(env, "ACI_WRITE"),
            read_rate=Rate.from_env(env, "ACI_READ"),
            identity_audience=identity_audience(env),
            bot_settings=pairs(env, "ACI_BOT_SETTINGS"),
            webrtc_image=webrtc,
            bot_secrets=secret_references(env),
            cells=_cells(env, required["AZURE_SUBSCRIPTION_ID"], required["AZURE_LOCATION"]),
        )


def _cells(env: Mapping[str, str], subscription: str, location: str) -> tuple[AciCell, ...]:
    """ACI_CELLS, refused where a cell could not sign in or join the deployment's network: a cell's
    `client_id` picks a managed identity, which a service principal's secret cannot sign in as; a
    cell in another subscription or location cannot join ACI_SUBNET_ID's network."""
    cells = aci_cells(setting_text(env, "ACI_CELLS"))
    if setting_text(env, "AZURE_CLIENT_SECRET") and (named := [c.name for c in cells if c.client_id]):
        raise SettingsError(f"ACI_CELLS cell {named[0]} names a client_id, but the dispatcher signs in as a service "
                            "principal (AZURE_CLIENT_SECRET): a cell's client_id picks a managed identity of its host; "
                            "remove it and give the service principal its role on the cell's resource group")
    subnet = setting_text(env, "ACI_SUBNET_ID")
    if subnet:
        home = (subnet_subscription(subnet) or subscription.lower(), location)
        for cell in cells:
            if cell.subnet_id is None and (cell.subscription_id.lower(), cell.location) != home:
                raise SettingsError(f"ACI_CELLS cell {cell.name} ({cell.subscription_id}, {cell.location}) cannot "
                                    f"join ACI_SUBNET_ID's network ({home[0]}, {home[1]}): set its subnet_id to a "
                                    "subnet delegated to Microsoft.ContainerInstance/containerGroups in its own "
                                    "subscription and location, as docs/operations.md says (Setting up ACI cells)")
    return cells


def pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """`KEY=value,…` (the stack's ACI_BOT_SETTINGS), each KEY a variable name ACI accepts. An error
    names the key, never the value."""
    values: dict[str, str] = {}
    for item in (piece.strip() for piece in env.get(name, "").split(",")):
        if not item:
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not ENV_NAME.match(key):
            raise SettingsError(f"{name}: {key!r} is not KEY=value with a KEY ACI accepts "
                                "(1–63 letters, digits or '_', no '_' first or last)")
        values[key] = value
    return values


def secret_references(env: Mapping[str, str]) -> dict[str, str]:
    """ACI_BOT_SECRETS: `ENV=https://<vault>/secrets/<name>/<version>,…`, each pinned to a version (the
    dispatcher caches what it read: an unversioned URI would go stale unseen)."""
    references = pairs(env, "ACI_BOT_SECRETS")
    for name, uri in references.items():
        parts = urlsplit(uri)
        path = parts.path.strip("/").split("/")
        if parts.scheme != "https" or len(path) != 3 or path[0] != "secrets" or not all(path):
            raise SettingsError(f"ACI_BOT_SECRETS: {name} must be a versioned Key Vault secret URI "
                                "(https://<vault>.vault.azure.net/secrets/<name>/<version>)")
    return references
