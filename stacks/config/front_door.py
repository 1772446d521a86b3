"""The front door stack (`role: frontDoor`): one global name that sends each caller to the nearest
healthy region (docs/regions.md, "Front door").

    voicefleet:frontDoorDomain   the global name (voice.example.com)
    voicefleet:frontDoorZone     its Route 53 hosted zone id (aws) or Cloud DNS managed zone (gcp)
    voicefleet:frontDoorRegions  every region by its REGION name:
                                 aws: {url: https://<its dispatcherDomain>, awsRegion: eu-west-1}
                                 gcp: {gcpRegion: europe-west1, service: <its Cloud Run service>}

A stack of its own, not part of a region's: each region can be deployed, replaced or destroyed
without the others, and adding or removing a region is one edit of this map and one `up`. The
region names and URLs are checked with the dispatcher's own rules (dispatcher/regions/config.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi

from dispatcher.regions.config import REGION_NAME, parse_regions
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.channel import DOMAIN
from stacks.config.reader import Reader, SettingsError
from stacks.config.settings import CLOUDS, MAX_STACK_NAME, NAMESPACE, valid_stack_name

ROLES = ("region", "frontDoor")
REGIONS_KEY = "frontDoorRegions"
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_ROUTE53_ZONE = re.compile(r"^Z[A-Z0-9]{1,31}$")
_MANAGED_ZONE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Cloud Run service names: a lowercase letter, then letters, digits and dashes, at most 49.
_CLOUD_RUN_SERVICE = re.compile(r"^[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?$")


@dataclass(frozen=True)
class FrontDoorRegion:
    name: str  # the region's REGION
    host: str = ""  # aws: its dispatcherDomain, the URL's host
    aws_region: str = ""  # aws: where its ALB runs (the latency record's region)
    gcp_region: str = ""  # gcp: its Cloud Run service's region
    service: str = ""  # gcp: its Cloud Run service


@dataclass(frozen=True)
class FrontDoorSettings:
    project: str
    stack: str
    cloud: str
    domain: str
    zone: str
    regions: tuple[FrontDoorRegion, ...]
    tags: Mapping[str, str]
    provider_region: str  # aws:region or gcp:region, for the provider (Route 53 and the balancer are global)
    gcp_project: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stack}"


def is_front_door() -> bool:
    return Reader(NAMESPACE).string("role", choices=ROLES) == "frontDoor"


def load() -> FrontDoorSettings:
    """Read and validate a front door stack's configuration (raises SettingsError)."""
    cfg = Reader(NAMESPACE)
    cloud = cfg.string("cloud", choices=CLOUDS, required=True)
    stack = pulumi.get_stack()
    if not valid_stack_name(stack):
        raise SettingsError(f"Invalid stack name {stack!r}: use at most {MAX_STACK_NAME} lowercase letters, digits "
                            "and single dashes, starting with a letter")
    domain = cfg.string("frontDoorDomain", required=True)
    if not DOMAIN.match(domain):
        raise cfg.fail("frontDoorDomain", f"must be a lowercase DNS name (got {domain!r})")
    zone = cfg.string("frontDoorZone", required=True)
    zone_rule = _ROUTE53_ZONE if cloud == "aws" else _MANAGED_ZONE
    if not zone_rule.match(zone):
        shape = ("a Route 53 hosted zone id like Z0123456789ABCDEF" if cloud == "aws"
                 else "a Cloud DNS managed zone name")
        raise cfg.fail("frontDoorZone", f"must be {shape} (got {zone!r})")
    entries = _entries(cfg)
    regions = _aws_regions(cfg, entries, domain) if cloud == "aws" else _gcp_regions(cfg, entries)
    extra = cfg.structured("tags") or {}
    if not isinstance(extra, dict):
        raise cfg.fail("tags", "must be a map of strings")
    tags = {"project": NAMESPACE, "stack": stack, "environment": cfg.string("environment"), "managed-by": "pulumi",
            **{str(k): str(v) for k, v in extra.items()}}
    provider = Reader(cloud)
    return FrontDoorSettings(
        project=pulumi.get_project(), stack=stack, cloud=cloud, domain=domain, zone=zone, regions=regions,
        tags=tags, provider_region=provider.string("region", required=True),
        gcp_project=provider.string("project", required=True) if cloud == "gcp" else "")


def _entries(cfg: Reader) -> dict[str, dict[str, Any]]:
    raw = cfg.raw(REGIONS_KEY)
    try:
        value = cfg.config.get_object(REGIONS_KEY) if raw is not None else None
    except (ValueError, pulumi.config.ConfigTypeError):
        value = None
    if not isinstance(value, dict) or not value or not all(isinstance(v, dict) for v in value.values()):
        raise cfg.fail(REGIONS_KEY, "must map every region's name to its settings, e.g. "
                                    "pulumi config set --path 'frontDoorRegions.eu.url' https://eu.voice.example.com "
                                    f"(docs/regions.md, Front door; got {raw!r})")
    for name in value:
        if not REGION_NAME.fullmatch(name):
            raise cfg.fail(REGIONS_KEY, f"{name!r} is not a region name (the regions' REGION: a lowercase letter, "
                                        "then up to 19 lowercase letters, digits or hyphens)")
    return value


def _field(cfg: Reader, name: str, entry: Mapping[str, Any], key: str, rule: re.Pattern[str], example: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not rule.match(value):
        raise cfg.fail(REGIONS_KEY, f"{name}.{key} must be like {example} (got {value!r})")
    return value


def _aws_regions(cfg: Reader, entries: Mapping[str, Mapping[str, Any]], domain: str) -> tuple[FrontDoorRegion, ...]:
    listing = ",".join(f"{name}={entry.get('url', '')}" for name, entry in entries.items())
    try:
        urls = parse_regions(listing)  # the dispatcher's REGIONS rules: https, base URLs, none twice
    except DispatcherSettingsError as exc:
        raise cfg.fail(REGIONS_KEY, f"{exc} (each region's url is its dispatcher's: https://<its dispatcherDomain>)") \
            from None
    regions = []
    for name, entry in entries.items():
        parts = urlsplit(urls[name])
        if parts.scheme != "https" or parts.port not in (None, 443):
            raise cfg.fail(REGIONS_KEY, f"{name}.url must be https on 443, where the health check calls /healthz "
                                        f"(got {urls[name]})")
        host = parts.hostname or ""
        if host == domain:
            raise cfg.fail(REGIONS_KEY, f"{name}.url is the front door's own name {domain}: give each region its "
                                        "dispatcherDomain, and the front door a name of its own")
        regions.append(FrontDoorRegion(name, host=host, aws_region=_field(
            cfg, name, entry, "awsRegion", _AWS_REGION, "eu-west-1")))
    return tuple(regions)


def _gcp_regions(cfg: Reader, entries: Mapping[str, Mapping[str, Any]]) -> tuple[FrontDoorRegion, ...]:
    regions = [FrontDoorRegion(name, gcp_region=_field(cfg, name, entry, "gcpRegion", _GCP_REGION, "europe-west1"),
                               service=_field(cfg, name, entry, "service", _CLOUD_RUN_SERVICE,
                                              "voicefleet-gcp-eu-dispatcher"))
               for name, entry in entries.items()]
    seen: dict[str, str] = {}
    for region in regions:
        # One serverless NEG per Cloud Run region in the backend service; two regions of the
        # deployment in one Cloud Run region would be one place, not two.
        if region.gcp_region in seen:
            raise cfg.fail(REGIONS_KEY, f"{seen[region.gcp_region]} and {region.name} are both in "
                                        f"{region.gcp_region}: one region of the deployment per Cloud Run region")
        seen[region.gcp_region] = region.name
    return tuple(regions)
