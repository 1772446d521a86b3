"""AWS, GCP and Azure rules on the names the program sends (or the providers generate), offline.

When a name input is absent, the Pulumi providers generate `<logical name>-<7 random chars>`
(pulumi-terraform-bridge `AutoName(field, maxLength, "-")`; pulumi-aws maps the target group as
`AutoName("name", 32, "-")` and IAM roles as `AutoName("name", 64, "-")`,
https://github.com/pulumi/pulumi-aws/blob/master/provider/resources.go), so the logical name plus
8 characters must fit the API's limit. Each rule below names the API reference it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stacks.tools.mocks import Registration, decode_json, unwrap

AUTO_SUFFIX = "-abcdefg"  # the separator plus the 7 random characters of an auto-name


@dataclass(frozen=True)
class NameRule:
    type: str  # resource type token
    field: str  # engine (camelCase) input
    max_length: int
    pattern: str  # full-match regular expression
    source: str
    auto_named: bool = True  # absent input -> `<logical>-<7 chars>`
    min_length: int = 1
    prefix_field: str | None = None  # e.g. namePrefix
    prefix_max: int = 0


_ALB = r"(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IAM = r"[\w+=,.@-]+"
_ECS = r"[A-Za-z0-9_-]+"
_RFC1035 = r"[a-z](?:[-a-z0-9]*[a-z0-9])?"
_ELB_API = "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/"
_AZURE_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_AZURE_RULES = "https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules"

RULES: tuple[NameRule, ...] = (
    NameRule("aws:lb/loadBalancer:LoadBalancer", "name", 32, _ALB, _ELB_API + "API_CreateLoadBalancer.html",
             prefix_field="namePrefix", prefix_max=6),
    NameRule("aws:lb/targetGroup:TargetGroup", "name", 32, _ALB, _ELB_API + "API_CreateTargetGroup.html",
             prefix_field="namePrefix", prefix_max=6),
    NameRule("aws:iam/role:Role", "name", 64, _IAM, "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html",
             prefix_field="namePrefix", prefix_max=38),
    NameRule("aws:iam/rolePolicy:RolePolicy", "name", 128, _IAM,
             "https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html"),
    NameRule("aws:ec2/securityGroup:SecurityGroup", "name", 255, r"[\x20-\x7e]+",
             "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html"),
    NameRule("aws:ec2/securityGroup:SecurityGroup", "description", 255, r"[A-Za-z0-9. _\-:/()#,@\[\]+=&;{}!$*]+",
             "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html", auto_named=False),
    NameRule("aws:ecs/cluster:Cluster", "name", 255, _ECS,
             "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateCluster.html"),
    NameRule("aws:ecs/taskDefinition:TaskDefinition", "family", 255, _ECS,
             "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RegisterTaskDefinition.html",
             auto_named=False),
    NameRule("aws:ecs/service:Service", "name", 255, _ECS,
             "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html"),
    NameRule("aws:ecr/repository:Repository", "name", 256,
             r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*",
             "https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html", min_length=2),
    NameRule("aws:cloudwatch/logGroup:LogGroup", "name", 512, r"[.\-_/#A-Za-z0-9]+",
             "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html"),
    NameRule("aws:secretsmanager/secret:Secret", "name", 512, r"[A-Za-z0-9/_+=.@-]+",
             "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html"),
    # GCP: compute resource names are RFC 1035 labels.
    *(NameRule(f"gcp:compute/{kind}", "name", 63, _RFC1035,
               "https://cloud.google.com/compute/docs/naming-resources#resource-name-format")
      for kind in ("network:Network", "subnetwork:Subnetwork", "firewall:Firewall", "address:Address",
                   "instance:Instance")),
    # name_prefix: the provider appends a 26-character unique id when the prefix is at most 37
    # characters (longer prefixes get a shorter, collision-prone suffix), and the whole name is an
    # RFC 1035 label of at most 63 characters.
    NameRule("gcp:compute/instanceTemplate:InstanceTemplate", "name", 63, _RFC1035,
             "https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/compute_instance_template#name_prefix",
             prefix_field="namePrefix", prefix_max=37),
    NameRule("gcp:serviceaccount/account:Account", "accountId", 30, r"[a-z](?:[-a-z0-9]{4,28}[a-z0-9])",
             "https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/create",
             auto_named=False, min_length=6),
    NameRule("gcp:projects/iAMCustomRole:IAMCustomRole", "roleId", 64, r"[A-Za-z0-9_.]{3,64}",
             "https://cloud.google.com/iam/docs/reference/rest/v1/projects.roles/create", auto_named=False),
    NameRule("gcp:projects/iAMCustomRole:IAMCustomRole", "title", 100, r".+",
             "https://cloud.google.com/iam/docs/reference/rest/v1/organizations.roles#Role", auto_named=False),
    NameRule("gcp:secretmanager/secret:Secret", "secretId", 255, r"[A-Za-z0-9_-]+",
             "https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create",
             auto_named=False),
    NameRule("gcp:artifactregistry/repository:Repository", "repositoryId", 63, _RFC1035,
             "https://cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.repositories/create",
             auto_named=False),
    # Azure (Microsoft.* naming rules,
    # https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules); the program
    # names every one of these itself (azure-native's auto-names are not relied on).
    NameRule("azure-native:containerregistry:Registry", "registryName", 50, r"[A-Za-z0-9]{5,50}",
             _AZURE_RULES + "#microsoftcontainerregistry", auto_named=False, min_length=5),
    NameRule("azure-native:keyvault:Vault", "vaultName", 24, r"[A-Za-z](?:[A-Za-z0-9]|-(?!-))*[A-Za-z0-9]",
             _AZURE_RULES + "#microsoftkeyvault", auto_named=False, min_length=3),
    NameRule("azure-native:keyvault:Secret", "secretName", 127, r"[A-Za-z0-9-]+", _AZURE_RULES + "#microsoftkeyvault",
             auto_named=False),
    NameRule("azure-native:app:ContainerApp", "containerAppName", 32, r"[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]",
             _AZURE_RULES + "#microsoftapp", auto_named=False, min_length=2),
    NameRule("azure-native:app:ManagedEnvironment", "environmentName", 60, r"[a-z](?:[a-z0-9-]*[a-z0-9])?",
             _AZURE_RULES + "#microsoftapp", auto_named=False, min_length=2),
    NameRule("azure-native:redisenterprise:RedisEnterprise", "clusterName", 60, _AZURE_LABEL,
             _AZURE_RULES + "#microsoftcache", auto_named=False),
    NameRule("azure-native:operationalinsights:Workspace", "workspaceName", 63, _AZURE_LABEL,
             _AZURE_RULES + "#microsoftoperationalinsights", auto_named=False, min_length=4),
    NameRule("azure-native:resources:ResourceGroup", "resourceGroupName", 90, r"[\w.()-]*[\w()-]",
             _AZURE_RULES + "#microsoftresources", auto_named=False),
    NameRule("azure-native:managedidentity:UserAssignedIdentity", "resourceName", 128, r"[A-Za-z0-9][\w-]{2,127}",
             _AZURE_RULES + "#microsoftmanagedidentity", auto_named=False, min_length=3),
    # Cloud Run service names: a DNS label, fewer than 50 characters.
    NameRule("gcp:cloudrunv2/service:Service", "name", 49, _RFC1035,
             "https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/create"),
)

# GCP labels (https://cloud.google.com/compute/docs/labeling-resources#requirements): at most 64 per
# resource; keys 1-63 chars, a lowercase letter first, then lowercase letters, digits, _ and -;
# values 0-63 of the same characters.
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64
# AWS tags (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html): key 1-128,
# value 0-256, at most 50 per resource, letters/digits/spaces and _ . : / = + - @.
AWS_TAG = re.compile(r"[\w .:/=+\-@]*")
MAX_AWS_TAGS = 50


def generated_name(reg: Registration, rule: NameRule) -> str | None:
    """The name the cloud will see: the input, a prefix plus its suffix, or an auto-name."""
    inputs = unwrap(reg.inputs)
    value = inputs.get(rule.field)
    if isinstance(value, str):
        return value
    if rule.prefix_field and isinstance(inputs.get(rule.prefix_field), str):
        return None  # checked as a prefix
    return reg.name + AUTO_SUFFIX if rule.auto_named else None


def _name_violations(reg: Registration, rule: NameRule) -> Iterator[str]:
    inputs = unwrap(reg.inputs)
    prefix = inputs.get(rule.prefix_field) if rule.prefix_field else None
    if isinstance(prefix, str) and rule.field not in inputs:
        if len(prefix) > rule.prefix_max:
            yield (f"{reg.type} {reg.name}: {rule.prefix_field} {prefix!r} is {len(prefix)} characters, "
                   f"more than {rule.prefix_max} ({rule.source})")
        return
    name = generated_name(reg, rule)
    if name is None:
        return
    origin = "auto-name" if rule.field not in inputs else rule.field
    if not rule.min_length <= len(name) <= rule.max_length:
        yield (f"{reg.type} {reg.name}: {origin} {name!r} is {len(name)} characters, limit "
               f"{rule.min_length}..{rule.max_length} ({rule.source})")
    elif not re.fullmatch(rule.pattern, name):
        yield f"{reg.type} {reg.name}: {origin} {name!r} does not match {rule.pattern} ({rule.source})"


def label_violations(owner: str, labels: Mapping[str, Any]) -> Iterator[str]:
    if len(labels) > MAX_LABELS:
        yield f"{owner}: {len(labels)} labels, more than {MAX_LABELS}"
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(str(key)) or not LABEL_VALUE.fullmatch(str(value)):
            yield f"{owner}: label {key}={value!r} breaks GCP's label rules (lowercase, digits, _ and -, ≤63)"


def tag_violations(owner: str, tags: Mapping[str, Any]) -> Iterator[str]:
    if len(tags) > MAX_AWS_TAGS:
        yield f"{owner}: {len(tags)} tags, more than {MAX_AWS_TAGS}"
    for key, value in tags.items():
        key, value = str(key), str(value)
        if not (1 <= len(key) <= 128 and len(value) <= 256 and AWS_TAG.fullmatch(key) and AWS_TAG.fullmatch(value)):
            yield f"{owner}: tag {key}={value!r} breaks AWS's tag rules (key ≤128, value ≤256, [\\w .:/=+-@])"


def violations(registrations: Iterable[Registration]) -> list[str]:
    found: list[str] = []
    for reg in registrations:
        for rule in RULES:
            if rule.type == reg.type:
                found.extend(_name_violations(reg, rule))
        # Provider inputs arrive JSON-encoded (the engine passes provider config as strings).
        inputs = {k: decode_json(v) for k, v in unwrap(reg.inputs).items()}
        owner = f"{reg.type} {reg.name}"
        if reg.type.startswith("gcp:") or reg.type == "pulumi:providers:gcp":
            for key in ("labels", "defaultLabels"):
                if isinstance(inputs.get(key), dict):
                    found.extend(label_violations(owner, inputs[key]))
        if reg.type.startswith("aws:") and isinstance(inputs.get("tags"), dict):
            found.extend(tag_violations(owner, inputs["tags"]))
        default_tags = inputs.get("defaultTags")
        if reg.type == "pulumi:providers:aws" and isinstance(default_tags, dict):
            found.extend(tag_violations(owner, default_tags.get("tags") or {}))
    return found
