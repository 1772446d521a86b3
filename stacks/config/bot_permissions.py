"""`botPermissions`: what the bot's own cloud identity may do, exactly as the team names it.

A bot that writes recordings to the team's bucket or calls Bedrock or Vertex AI needs permissions of
its own. It never gets a key for them (dispatcher/machines/bot_variables.py refuses the SDKs'
credential variables in botSecrets): its SDK finds the identity voicefleet gives every bot (the ECS
task role, the VM's or Cloud Run job's service account, the container group's managed identity, the
pod's ServiceAccount) through the platform, and this key grants that identity what it lists. One key,
its shape the stack's cloud's own:

    aws    a list of IAM statements on the bot's task role: {actions: [..], resources: [..], condition: {..}}
    gcp    a list of IAM roles granted on the stack's project to the bot's service account
    azure  a list of role assignments on the bot's identity: {role: <role definition GUID or id>, scope: <id>}
    k8s    one workload identity annotation on the bots' ServiceAccount, e.g.
           {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/voice-bot"}

Refused: wildcard actions (as policy/rules.py no-iam-wildcard-actions), grants that are every
permission at once, and grants a bot could widen itself with or reach voicefleet's own secrets by
(the constants below say which), or its recordings and images by (stacks/config/bot_data_fence.py;
docs/bring-your-bot.md, "The bot's own cloud access", says why).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from dispatcher.machines.bot_variables import PERMISSIONS_KEY
from stacks.config.bot_data_fence import aws_own_data, gcp_own_data
from stacks.config.reader import Reader

_AWS_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")
_GCP_ROLE = re.compile(r"^(roles/[A-Za-z0-9_.]+|(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|organizations/\d+)"
                       r"/roles/[A-Za-z0-9_.]+)$")
GCP_BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
# Held on the project, these reach every account and secret in it: act as or mint tokens for the
# dispatcher's account, edit the project's IAM policy, read voicefleet's secrets, run a build as
# Cloud Build's account.
GCP_PROJECT_ESCALATION = ("roles/iam.", "roles/resourcemanager.", "roles/secretmanager.", "roles/cloudbuild.")
# What voicefleet grants every bot's account itself (stacks/gcp/bot_template.py pull_and_log): a
# second IAMMember of one binding would take the grant away with it when the team removes its own.
GCP_ALREADY_GRANTED = ("roles/logging.logWriter",)
# AWS: a service whose every action changes identities (iam), and the services that hold voicefleet's
# own secrets, whose actions all take a resource ARN, so `*` there only widens them to every secret.
AWS_IDENTITY_SERVICES = ("iam",)
AWS_NO_STAR_SERVICES = ("secretsmanager", "ssm", "kms")
AWS_ASSUME = re.compile(r"^sts:assumerole", re.IGNORECASE)
# IAM's condition operators (the policy grammar's condition_type_string), and a role's inline policy
# limit in characters, whitespace not counted (IAM and STS quotas).
_AWS_CONDITION_OPERATOR = re.compile(
    r"^(ForAnyValue:|ForAllValues:)?(String(Not)?Equals(IgnoreCase)?|String(Not)?Like|Numeric(Not)?Equals|"
    r"Numeric(Less|Greater)Than(Equals)?|Date(Not)?Equals|Date(Less|Greater)Than(Equals)?|Bool|BinaryEquals|"
    r"(Not)?IpAddress|Arn(Not)?(Equals|Like))(IfExists)?$|^Null$")
AWS_ROLE_POLICY_CHARACTERS = 10_240
# `*`, or an ARN whose resource is every one of a type (`secret:*`, `parameter/*`, `key/*`).
_EVERY_RESOURCE = re.compile(r"^(\*|arn:[^:]*:[^:]*:[^:]*:[^:]*:([A-Za-z-]+[:/])?\*)$")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_AZURE_ROLE = re.compile(rf"^((/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/)?({_GUID})$")
# Azure's built-in roles that hold every action, or that may grant any: never a bot's.
AZURE_BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}
# Kubernetes: the annotation each cloud's workload identity reads on a ServiceAccount, and its value's shape.
WORKLOAD_IDENTITY = {
    "eks.amazonaws.com/role-arn": (re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"),
                                   "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
    "iam.gke.io/gcp-service-account": (re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]"
                                                  r"\.iam\.gserviceaccount\.com$"),
                                       "a service account's email (NAME@PROJECT.iam.gserviceaccount.com)"),
    "azure.workload.identity/client-id": (re.compile(rf"^{_GUID}$"), "a managed identity's client id (a GUID)"),
}
# Why two of the three do not reach a bot pod as voicefleet runs them (EKS's IRSA does: STS over HTTPS).
UNREACHABLE_ON_K8S = {
    "iam.gke.io/gcp-service-account": "GKE's metadata server answers on 169.254.169.254, which the bots' network "
                                      "policy closes with the rest of 169.254.0.0/16",
    "azure.workload.identity/client-id": "Azure's webhook mutates only pods labelled azure.workload.identity/use: "
                                         "\"true\", which the dispatcher does not put on bot pods",
}
SHAPES = {
    "aws": "a list of IAM statements, e.g. `pulumi config set --path 'botPermissions[0].actions[0]' s3:PutObject` "
           "and `pulumi config set --path 'botPermissions[0].resources[0]' 'arn:aws:s3:::my-bucket/*'`",
    "gcp": "a list of IAM roles, e.g. `pulumi config set --path 'botPermissions[0]' roles/pubsub.publisher`",
    "azure": "a list of role assignments, e.g. `pulumi config set --path 'botPermissions[0].role' "
             "ba92f5b4-2d11-453d-a403-e96b0029c9fe` and `pulumi config set --path 'botPermissions[0].scope' "
             "/subscriptions/…/storageAccounts/NAME`",
    "k8s": "one workload identity annotation, e.g. `pulumi config set --path "
           "'botPermissions[\"eks.amazonaws.com/role-arn\"]' arn:aws:iam::123456789012:role/NAME`",
}


@dataclass(frozen=True)
class AzureAssignment:
    role: str  # the role definition's GUID
    scope: str  # the resource (or group) it is assigned on


@dataclass(frozen=True)
class BotPermissions:
    """What the stack grants the bot's identity; empty: nothing (the default)."""

    aws_statements: tuple[Mapping[str, Any], ...] = ()  # IAM statements, Allow
    gcp_roles: tuple[str, ...] = ()
    azure_assignments: tuple[AzureAssignment, ...] = ()
    k8s_annotations: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.aws_statements or self.gcp_roles or self.azure_assignments or self.k8s_annotations)


def load(cfg: Reader, cloud: str) -> BotPermissions:
    """The stack's botPermissions in its cloud's shape; the plan states what it grants."""
    if cfg.raw(PERMISSIONS_KEY) is None:
        return BotPermissions()
    try:
        value = cfg.config.get_object(PERMISSIONS_KEY)
    except Exception:  # noqa: BLE001 - pulumi raises its own JSON error type
        value = None
    if value in ([], {}):
        return BotPermissions()  # Pulumi.yaml's default, merged in plain by the CLI
    loaded = {"aws": _aws, "gcp": _gcp, "azure": _azure, "k8s": _k8s}[cloud](cfg, value)
    pulumi.log.info(f"{cfg.key(PERMISSIONS_KEY)}: {described(loaded)}")
    return loaded


def described(permissions: BotPermissions) -> str:
    """What the grant is, in one line for the plan."""
    if permissions.aws_statements:
        return "the bot's task role may " + "; ".join(
            f"{', '.join(s['Action'])} on {', '.join(s['Resource'])}" + (" (with a condition)" if "Condition" in s
                                                                        else "")
            for s in permissions.aws_statements)
    if permissions.gcp_roles:
        return "the bot's service account holds " + ", ".join(permissions.gcp_roles) + " on the stack's project"
    if permissions.azure_assignments:
        return "the bot's identity is assigned " + "; ".join(
            f"{AZURE_BROAD_ROLES.get(a.role, a.role)} on {a.scope}" for a in permissions.azure_assignments)
    return "the bots' ServiceAccount carries " + ", ".join(f"{k}={v}" for k, v in permissions.k8s_annotations.items())


def _fail(cfg: Reader, cloud: str, problem: str) -> Exception:
    return cfg.fail(PERMISSIONS_KEY, f"{problem}; on {cloud} it is {SHAPES[cloud]} (docs/bring-your-bot.md, "
                                     "\"The bot's own cloud access\")")


def _strings(value: Any) -> list[str] | None:
    """A string or a non-empty list of non-empty strings, as IAM writes Action and Resource."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        return None
    return [i.strip() for i in items]


def _aws(cfg: Reader, value: Any) -> BotPermissions:
    if not isinstance(value, list) or not value:
        raise _fail(cfg, "aws", f"must be a list of statements (got {json.dumps(value)[:80]})")
    statements: list[Mapping[str, Any]] = []
    for index, entry in enumerate(value):
        where = f"statement {index}"
        if not isinstance(entry, dict) or set(entry) - {"actions", "resources", "condition"}:
            raise _fail(cfg, "aws", f"{where} must hold actions, resources and an optional condition (got "
                                    f"{json.dumps(entry)[:80]})")
        actions, resources = _strings(entry.get("actions")), _strings(entry.get("resources"))
        if actions is None or resources is None:
            raise _fail(cfg, "aws", f"{where} needs actions and resources, each a non-empty list of strings")
        for action in actions:
            if "*" in action or "?" in action:
                raise _fail(cfg, "aws", f"{where}: action {action!r} is a wildcard: name each action the bot calls "
                                        "(the policy pack refuses wildcard actions, no-iam-wildcard-actions)")
            if not _AWS_ACTION.match(action):
                raise _fail(cfg, "aws", f"{where}: {action!r} is not an IAM action (service:Action, e.g. "
                                        "s3:PutObject)")
        for resource in resources:
            if resource != "*" and not resource.startswith("arn:"):
                raise _fail(cfg, "aws", f"{where}: resource {resource!r} is not an ARN (or \"*\" for an action that "
                                        "has no resource-level form)")
        if (problem := _aws_escalation(actions, resources)) is not None:
            raise _fail(cfg, "aws", f"{where}: {problem}")
        condition = entry.get("condition")
        if condition is not None and (problem := _aws_condition(condition)) is not None:
            raise _fail(cfg, "aws", f"{where}: condition {problem}")
        statements.append({"Effect": "Allow", "Action": actions, "Resource": resources,
                           **({"Condition": condition} if condition else {})})
    size = len(json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":")))
    if size > AWS_ROLE_POLICY_CHARACTERS:
        raise _fail(cfg, "aws", f"the statements are {size} characters as a policy, over the "
                                f"{AWS_ROLE_POLICY_CHARACTERS} IAM allows a role's inline policies: name fewer "
                                "resources (a pattern within your own, arn:aws:s3:::team-*/*)")
    return BotPermissions(aws_statements=tuple(statements))


def _aws_condition(condition: Any) -> str | None:
    """What is wrong with an IAM Condition block (operator -> {key: value or values}); None: nothing.
    IAM refuses the rest at `up` as MalformedPolicyDocument, after the preview said nothing."""
    if not isinstance(condition, dict) or not condition:
        return "must be an IAM Condition object ({\"StringEquals\": {\"aws:RequestedRegion\": \"eu-west-1\"}})"
    for operator, tests in condition.items():
        if not _AWS_CONDITION_OPERATOR.match(operator):
            return (f"operator {operator!r} is not an IAM condition operator (StringEquals, StringLike, ArnLike, "
                    "Bool, IpAddress, …, with ForAnyValue:/ForAllValues: or …IfExists)")
        if not isinstance(tests, dict) or not tests or not all(
                isinstance(key, str) and key and _condition_values(value) for key, value in tests.items()):
            return f"{operator} must map each condition key to a value or a list of values"
    return None


def _condition_values(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(item, (str, bool, int, float)) for item in items)


def _aws_escalation(actions: list[str], resources: list[str]) -> str | None:
    """Why a statement would let the bot widen its own access or reach voicefleet's secrets; None: it
    does not. IAM matches action names case-insensitively, so this does too."""
    for action in actions:
        service = action.split(":", 1)[0].lower()
        if service in AWS_IDENTITY_SERVICES:
            return (f"{action} changes IAM, with which the bot could grant itself anything: the stack's own "
                    "roles are the stack's; name what the bot calls on your resources")
        everywhere = [r for r in resources if _EVERY_RESOURCE.match(r)]
        if AWS_ASSUME.match(action) and any("*" in r for r in resources):
            return f"{action} on {resources} assumes any role: name the role's ARN"
        if service in AWS_NO_STAR_SERVICES and everywhere:
            return (f"{action} on {everywhere[0]!r} reaches voicefleet's own secrets and keys too: name the "
                    "ARN of yours")
        if (reached := aws_own_data(action, resources, f"{pulumi.get_project()}-{pulumi.get_stack()}")) is not None:
            return reached
        own = [r for r in resources if service == "secretsmanager" and _may_name_stack_secret(r)]
        if own:
            return (f"{action} on {own[0]!r} may reach this stack's own secrets (named "
                    f"{_stack_secret_path()}…, the dispatcher's among them): name secrets of yours outside that path")
    return None


def _stack_secret_path() -> str:
    """Where the AWS stack keeps its secrets (stacks/aws/stack.py SecretStore path), with the slash after."""
    return f"/{pulumi.get_project()}/{pulumi.get_stack()}/"


def _may_name_stack_secret(arn: str) -> bool:
    """Whether a secret ARN (its name a pattern, `*` and `?` IAM's wildcards) may match a secret under
    the stack's path: every name it matches starts with its text before the first wildcard, so that
    text and the path must not be one a prefix of the other."""
    name = arn.split(":secret:", 1)[1] if ":secret:" in arn else ""
    literal = re.split(r"[*?]", name, maxsplit=1)[0]
    path = _stack_secret_path()
    if not name or literal == name:  # no pattern: one secret, named
        return name.startswith(path)
    return path.startswith(literal) or literal.startswith(path)


def _gcp(cfg: Reader, value: Any) -> BotPermissions:
    roles = _strings(value) if isinstance(value, list) else None
    if roles is None:
        raise _fail(cfg, "gcp", f"must be a list of roles (got {json.dumps(value)[:80]})")
    for role in roles:
        if role in GCP_BASIC_ROLES:
            raise _fail(cfg, "gcp", f"{role} is a basic role (every service's permissions at once): name a "
                                    "predefined or custom role that holds what the bot calls")
        if not _GCP_ROLE.match(role):
            raise _fail(cfg, "gcp", f"{role!r} is not a role name (roles/NAME, projects/P/roles/NAME or "
                                    "organizations/O/roles/NAME)")
        if role.startswith(GCP_PROJECT_ESCALATION):
            raise _fail(cfg, "gcp", f"{role} on the project reaches every account and secret in it, the dispatcher's "
                                    "too: grant it on your own resource (your secret, your service account) "
                                    "outside this stack")
        if role in GCP_ALREADY_GRANTED:
            raise _fail(cfg, "gcp", f"the bot's account holds {role} already (voicefleet grants it): leave it out")
        if (reached := gcp_own_data(role)) is not None:
            raise _fail(cfg, "gcp", reached)
    return BotPermissions(gcp_roles=tuple(dict.fromkeys(roles)))


def _azure(cfg: Reader, value: Any) -> BotPermissions:
    if not isinstance(value, list) or not value:
        raise _fail(cfg, "azure", f"must be a list of role assignments (got {json.dumps(value)[:80]})")
    found: list[AzureAssignment] = []
    for index, entry in enumerate(value):
        where = f"assignment {index}"
        if not isinstance(entry, dict) or set(entry) != {"role", "scope"} or not all(
                isinstance(entry[k], str) for k in entry):
            raise _fail(cfg, "azure", f"{where} must hold a role and a scope (got {json.dumps(entry)[:80]})")
        role = _AZURE_ROLE.match(entry["role"].strip())
        if role is None:
            raise _fail(cfg, "azure", f"{where}: role {entry['role']!r} is not a role definition (its GUID, or "
                                      "…/providers/Microsoft.Authorization/roleDefinitions/GUID)")
        guid = role.group(3).lower()
        if guid in AZURE_BROAD_ROLES:
            raise _fail(cfg, "azure", f"{where}: {AZURE_BROAD_ROLES[guid]} holds every action or grants any: name "
                                      "a role that holds what the bot calls (e.g. Storage Blob Data Contributor)")
        scope = entry["scope"].strip().rstrip("/")
        if not re.match(r"^/subscriptions/[^/]+/resourceGroups/[^/]+(/providers/.+)?$", scope, re.IGNORECASE):
            raise _fail(cfg, "azure", f"{where}: scope {entry['scope']!r} must be a resource group or a resource "
                                      "in one (/subscriptions/…/resourceGroups/…[/providers/…]), never a whole "
                                      "subscription")
        found.append(AzureAssignment(role=guid, scope=scope))
    # ARM ids are case-insensitive: one role on one scope twice, however written, is one assignment (a
    # second would be refused at `up` as RoleAssignmentExists).
    unique = {(a.role, a.scope.lower()): a for a in reversed(found)}
    return BotPermissions(azure_assignments=tuple(reversed(unique.values())))


def check_azure_scopes(cfg: Reader, permissions: BotPermissions, subscription_id: str, resource_group: str) -> None:
    """Each assignment's scope is in the stack's subscription and outside the stack's own resource
    group, which holds the dispatcher's identity and the key vault of voicefleet's secrets (ARM ids
    are case-insensitive)."""
    own = f"/subscriptions/{subscription_id}/resourcegroups/{resource_group}".lower()
    for index, assignment in enumerate(permissions.azure_assignments):
        scope = assignment.scope.lower()
        if not scope.startswith(f"/subscriptions/{subscription_id.lower()}/"):
            raise _fail(cfg, "azure", f"assignment {index}: scope {assignment.scope!r} is outside this stack's "
                                      f"subscription {subscription_id}: assign it from a stack of that one")
        if scope == own or scope.startswith(f"{own}/"):
            raise _fail(cfg, "azure", f"assignment {index}: scope {assignment.scope!r} is this stack's own resource "
                                      "group, where the dispatcher's identity and voicefleet's key vault are: put "
                                      "your resources in a group of your own")


def _k8s(cfg: Reader, value: Any) -> BotPermissions:
    if not isinstance(value, dict) or len(value) != 1:
        raise _fail(cfg, "k8s", f"must be one annotation (got {json.dumps(value)[:80]})")
    ((name, annotation),) = value.items()
    if name not in WORKLOAD_IDENTITY:
        raise _fail(cfg, "k8s", f"{name!r} is not a workload identity annotation ({', '.join(WORKLOAD_IDENTITY)})")
    pattern, shape = WORKLOAD_IDENTITY[name]
    if not isinstance(annotation, str) or not pattern.match(annotation.strip()):
        raise _fail(cfg, "k8s", f"{name} must be {shape} (got {annotation!r})")
    if name in UNREACHABLE_ON_K8S:
        pulumi.log.warn(f"{cfg.key(PERMISSIONS_KEY)}: {name} is set on the bots' ServiceAccount, but the bots cannot "
                        f"use it yet: {UNREACHABLE_ON_K8S[name]} (docs/bring-your-bot.md, \"The bot's own cloud "
                        "access\")")
    return BotPermissions(k8s_annotations={name: annotation.strip()})
