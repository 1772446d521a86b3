"""What Route 53 and the Compute API refuse in a front door, checked before any `up`.

Written from the providers' schemas and the APIs they call:
- terraform-provider-aws `internal/service/route53/health_check.go`: `type` one of Route 53's
  HealthCheckType values, `request_interval` 10 or 30 (ForceNew), `failure_threshold` 1-10, `fqdn`
  and `resource_path` at most 255 characters, `port` a port number; Route 53's CreateHealthCheck
  needs an address or a name to call for HTTP(S) and TCP checks.
- terraform-provider-aws `internal/service/route53/record.go`: every routing policy is
  RequiredWith `set_identifier`, and the policies conflict with each other; `name`, `zone_id` are
  ForceNew while Route 53 keys a record by (name, type, set identifier), so a replacement created
  before its predecessor is deleted collides with it (CREATE, not UPSERT). Route 53's
  ChangeResourceRecordSets: records of one name and type with a routing policy all use the same
  policy and differ by set identifier (1-128 characters).
- Serverless NEGs (https://cloud.google.com/load-balancing/docs/negs/serverless-neg-concepts): a
  backend service of them takes no health check, named port or timeout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from stacks.tools.mocks import Registration, unwrap

HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP", "CALCULATED",
                      "CLOUDWATCH_METRIC", "RECOVERY_CONTROL")
ROUTING_POLICIES = ("cidrRoutingPolicy", "failoverRoutingPolicies", "geolocationRoutingPolicies",
                    "geoproximityRoutingPolicy", "latencyRoutingPolicies", "multivalueAnswerRoutingPolicy",
                    "weightedRoutingPolicies")
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"


def violations(registrations: list[Registration]) -> list[str]:
    return (health_check_violations(registrations) + record_violations(registrations)
            + serverless_backend_violations(registrations))


def health_check_violations(registrations: Iterable[Registration]) -> list[str]:
    found = []
    for reg in registrations:
        if reg.type != HEALTH_CHECK:
            continue
        inputs = unwrap(reg.inputs)
        where = f"{reg.type} {reg.name}"
        if inputs.get("type") not in HEALTH_CHECK_TYPES:
            found.append(f"{where}: type {inputs.get('type')!r} is not one of {', '.join(HEALTH_CHECK_TYPES)}")
        if "requestInterval" in inputs and int(inputs["requestInterval"]) not in (10, 30):
            found.append(f"{where}: request_interval must be 10 or 30 (got {inputs['requestInterval']})")
        if "failureThreshold" in inputs and not 1 <= int(inputs["failureThreshold"]) <= 10:
            found.append(f"{where}: failure_threshold must be 1-10 (got {inputs['failureThreshold']})")
        for key in ("fqdn", "resourcePath"):
            if len(str(inputs.get(key, ""))) > 255:
                found.append(f"{where}: {key} is longer than 255 characters")
        if "port" in inputs and not 1 <= int(inputs["port"]) <= 65535:
            found.append(f"{where}: port {inputs['port']} is not a port number")
        # A string match needs its string, 1-255 characters (health_check.go: search_string,
        # StringLenBetween(1, 255); Route 53's CreateHealthCheck requires SearchString for these types).
        matched = str(inputs.get("searchString", ""))
        if str(inputs.get("type", "")).endswith("_STR_MATCH") and not 1 <= len(matched) <= 255:
            found.append(f"{where}: a {inputs.get('type')} check needs a search_string of 1-255 characters")
        calls = str(inputs.get("type", "")).startswith(("HTTP", "TCP"))
        if calls and not (inputs.get("fqdn") or inputs.get("ipAddress")):
            found.append(f"{where}: an {inputs.get('type')} check needs an fqdn or ip_address to call")
    return found


def _policies(inputs: dict[str, Any]) -> list[str]:
    return [key for key in ROUTING_POLICIES if inputs.get(key)]


def record_violations(registrations: Iterable[Registration]) -> list[str]:
    found = []
    groups: dict[tuple[str, str, str], list[tuple[Registration, dict[str, Any]]]] = defaultdict(list)
    for reg in registrations:
        if reg.type != RECORD:
            continue
        inputs = unwrap(reg.inputs)
        where, policies, identifier = f"{reg.type} {reg.name}", _policies(inputs), inputs.get("setIdentifier")
        if len(policies) > 1:
            found.append(f"{where}: routing policies {', '.join(policies)} conflict; a record has one")
        if policies and not identifier:
            found.append(f"{where}: {policies[0]} requires set_identifier")
        if identifier is not None and not 1 <= len(str(identifier)) <= 128:
            found.append(f"{where}: set_identifier must be 1-128 characters (got {identifier!r})")
        for policy in inputs.get("latencyRoutingPolicies") or []:
            if not policy.get("region"):
                found.append(f"{where}: a latency routing policy needs the AWS region it answers for")
        if identifier and not reg.delete_before_replace:
            found.append(f"{where}: Route 53 keys it by name, type and set identifier, and a new zone replaces it: "
                         "created before the old one is deleted, the replacement collides: set delete_before_replace")
        key = (str(inputs.get("zoneId")), str(inputs.get("name", "")).rstrip(".").lower(), str(inputs.get("type")))
        groups[key].append((reg, inputs))
    for (_, name, typ), members in groups.items():
        identifiers = [inputs.get("setIdentifier") for _, inputs in members]
        if len(members) > 1 and len(set(identifiers)) != len(identifiers):
            found.append(f"{name} {typ}: set identifiers {identifiers} are not unique among its records")
        kinds = {tuple(_policies(inputs)) for _, inputs in members}
        if len(kinds) > 1:
            found.append(f"{name} {typ}: its records mix routing policies {sorted(kinds)}; Route 53 takes one per name")
    return found


def serverless_backend_violations(registrations: list[Registration]) -> list[str]:
    negs = {reg.outputs.get("id") or f"{reg.name}-id" for reg in registrations
            if reg.type == NEG and unwrap(reg.inputs).get("networkEndpointType") == "SERVERLESS"}
    names = {f"{reg.name}" for reg in registrations if reg.type == NEG}
    found = []
    for reg in registrations:
        if reg.type != BACKEND_SERVICE:
            continue
        inputs = unwrap(reg.inputs)
        groups = [str(backend.get("group", "")) for backend in inputs.get("backends") or []]
        serverless = any(group in negs or group.rsplit("/", 1)[-1] in names for group in groups)
        for key in ("healthChecks", "portName", "timeoutSec"):
            if serverless and inputs.get(key):
                found.append(f"{reg.type} {reg.name}: a backend service of serverless NEGs takes no {key}")
    return found
