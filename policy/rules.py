"""voicefleet guardrails as Pulumi policy validators.

Each check is a plain function over a resource's type and engine (camelCase) properties, so tests
call it directly; `POLICIES` wraps them for the pack (policy/__main__.py). Unknown values during
a preview (outputs not yet computed) are skipped rather than guessed at.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

REQUIRED_TAGS = ("project", "stack", "environment", "managed-by")
BOT_SG_DESCRIPTION = "voicefleet bots: no ingress"
BOT_TAG = "voicefleet-bot"
# Environment variable names that must come from a secret store, never a plain value.
SECRET_NAME = re.compile(r"(API_KEY|API_KEYS|TOKEN|SECRET|PASSWORD|PRIVATE_KEY)$")
# The bot control channel's credential (botchannel/contract.py CHANNEL_TOKEN_VARIABLE; repeated: the
# pack is published alone). It reaches containers and VMs only as a secret store reference.
CHANNEL_TOKEN = "BOT_CHANNEL_TOKEN"  # noqa: S105 - a variable name, not a secret
_SECRETS_MANAGER_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:")
_SECRET_VERSION = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/\d+$")

# The TURN relay (stacks/aws/relay.py, stacks/gcp/relay.py); the pack is published alone, so it repeats the names.
TURN_ROLE = "turn"  # AWS tag / GCP label `role`
TURN_TAG = "voicefleet-turn"  # GCP network tag
TURN_SG_DESCRIPTION = "voicefleet TURN relay: TURN ports only"
# The SIP edge (stacks/aws/sip_edge.py, stacks/config/sip_edge.py), repeated for the same reason.
SIP_EDGE_SG_DESCRIPTION = "voicefleet SIP edge: SIP from the trunks, RTP, control from the dispatcher"
SIP_EDGE_SIP_PORT, SIP_EDGE_CONTROL_PORT = 5060, 5080
DISPATCHER_SG_DESCRIPTION = "voicefleet dispatcher tasks"  # stacks/aws/balancer.py: the control API admits it alone
SIP_EDGE_ANY_SOURCE = "allowAnySource"  # in a SIP rule's description: the trunk asked for any source
SIP_EDGE_ANY_MEDIA_SOURCE = "allowAnyMediaSource"  # in an RTP rule's: the trunk asked for media from anyone
# In a SIP rule's description: a trunk with an inbound digest credential and no sources, whose callers come from any
# address (stacks/config/sip_edge_sources.py CREDENTIAL_SOURCE_MARK); it opens SIP to 0.0.0.0/0 and nothing else.
SIP_EDGE_CREDENTIAL_SOURCE = "inboundDigestUsername without sources"
SIP_EDGE_ANY_ADDRESS = ("0.0.0.0/0", "::/0")
# How the stacks mark their SIP-over-TLS rule, naming the edge's tlsPort (stacks/config/sip_edge.py tls_rule_mark):
# the one TCP port the edge takes from the trunks, so a rule for any other TCP service is refused.
SIP_EDGE_TLS_MARK = re.compile(r"SIP over TLS on TCP (\d+)")
SIP_EDGE_WIDEST_PREFIX = 16  # a wider network (0.0.0.0/1 too) needs the trunk's opt-in
# The widest private range the control API may admit on GCP and Azure, where no identity of the dispatcher's
# can be named: its own subnet (Azure's Container Apps environment's /23, GCP's egress /24), never the network
# around it, whose bots and VMs would reach the edge's control secret's door.
SIP_EDGE_CONTROL_WIDEST_PREFIX = 23
SIP_EDGE_CONTROL_WIDEST_PREFIX_V6 = 64  # an IPv6 subnet is a /64: no wider
SIP_EDGE_ROLE = "sip-edge"  # the Azure edge's tag `role` (stacks/azure/sip_edge.py)
SIP_EDGE_RULE = "sip edge: "  # how every rule of the edge's describes itself (stacks/gcp/sip_edge.py's firewall)
# The GCP edge's service account, every edge rule's target (stacks/gcp/naming.py account_id(stack, "sip")): a rule
# is the edge's by whom it reaches, whatever it calls itself.
SIP_EDGE_ACCOUNT = re.compile(r"^vf-[a-z0-9-]+-sip@")
# Azure's AllowVnetInBound (priority 65000) admits the whole network and its peers on every port under a group's
# own rules; the edge's group denies everything else inbound above it (stacks/azure/sip_edge.py deny-other-in).
AZURE_LOWEST_CUSTOM_PRIORITY = 4096
# What keeps a TURN server from being an open relay into the network (coturn options).
TURN_REQUIRED = ("use-auth-secret", "no-multicast-peers", "no-cli",
                 "denied-peer-ip=10.0.0.0-10.255.255.255", "denied-peer-ip=172.16.0.0-172.31.255.255",
                 "denied-peer-ip=192.168.0.0-192.168.255.255", "denied-peer-ip=169.254.0.0-169.254.255.255",
                 "denied-peer-ip=127.0.0.0-127.255.255.255", "denied-peer-ip=100.64.0.0-100.127.255.255")
TURN_FORBIDDEN = ("no-auth", "allow-loopback-peers", "lt-cred-mech", "cli-password")
TURN_TCP_PORTS = {3478, 443}
AZURE_CONTAINER_APP = "azure-native:app:ContainerApp"

Props = Mapping[str, Any]
Check = Callable[[str, Props], Iterator[str]]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None


def iam_wildcard_actions(resource_type: str, props: Props) -> Iterator[str]:
    if not resource_type.startswith("aws:iam/"):
        return
    for key in ("policy", "assumeRolePolicy"):
        document = _json(props.get(key))
        if not isinstance(document, dict):
            continue
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                if "*" in action:
                    yield f"IAM action {action!r} is a wildcard; name the actions the role needs"


# Grants that are every permission at once (stacks/config/bot_permissions.py refuses them in botPermissions;
# repeated: the pack is published alone): GCP's basic roles, Azure's Owner, Contributor and access administrators.
GCP_BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
AZURE_BROAD_ROLES = ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
                     "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "f58310d9-a9f6-439a-9e8d-f62e7b41a168")


def all_permission_roles(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type.startswith("gcp:") and "/iAM" in resource_type and props.get("role") in GCP_BASIC_ROLES:
        yield f"{props['role']} is a basic role (every service's permissions): grant a role that holds what is called"
    if resource_type == "azure-native:authorization:RoleAssignment":
        role = str(props.get("roleDefinitionId") or "").rsplit("/", 1)[-1].lower()
        if role in AZURE_BROAD_ROLES:
            yield f"role definition {role} holds every action or grants any: assign a role that holds what is called"


def ecr_scan_on_push(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type == "aws:ecr/repository:Repository":
        if not (props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
            yield "ECR repositories must scan images on push"


def log_group_retention(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type == "aws:cloudwatch/logGroup:LogGroup" and not props.get("retentionInDays"):
        yield "log groups must set retentionInDays (logs otherwise grow and bill forever)"


def required_tags(resource_type: str, props: Props) -> Iterator[str]:
    """AWS tags (with provider default tags merged: tagsAll), GCP labels (effectiveLabels), and the
    tags of Azure's tracked resources (those with a location: Azure's provider has no default tags)."""
    if resource_type.startswith("azure-native:") and isinstance(props.get("location"), str):
        given = props.get("tags")
        missing = [t for t in REQUIRED_TAGS if not isinstance(given, dict) or t not in given]
        if missing:
            yield f"missing required tags: {', '.join(missing)}"
    for key in ("tagsAll", "effectiveLabels"):
        tags = props.get(key)
        if isinstance(tags, dict):
            missing = [t for t in REQUIRED_TAGS if t not in tags]
            if missing:
                yield f"missing required {'tags' if key == 'tagsAll' else 'labels'}: {', '.join(missing)}"


def plaintext_secret_env(resource_type: str, props: Props) -> Iterator[str]:
    names: list[str] = []
    if resource_type == "aws:ecs/taskDefinition:TaskDefinition":
        for container in _json(props.get("containerDefinitions")) or []:
            names += [e.get("name", "") for e in container.get("environment") or []]
    elif resource_type == "gcp:cloudrunv2/service:Service":
        for container in (props.get("template") or {}).get("containers") or []:
            names += [e.get("name", "") for e in container.get("envs") or [] if "value" in e]
    elif resource_type == AZURE_CONTAINER_APP:
        for container in (props.get("template") or {}).get("containers") or []:
            names += [e.get("name", "") for e in container.get("env") or [] if "value" in e]
    for name in names:
        if SECRET_NAME.search(name):
            yield f"{name} is a plain environment value; pass it by reference (secrets/valueFrom, secretKeyRef)"


def channel_token_by_reference(resource_type: str, props: Props) -> Iterator[str]:
    """BOT_CHANNEL_TOKEN: a Secrets Manager reference (ECS), a secretKeyRef (Cloud Run), a pinned
    Secret Manager version name (GCE metadata); never a plain value or a command-line argument."""
    if resource_type == "aws:ecs/taskDefinition:TaskDefinition":
        for container in _json(props.get("containerDefinitions")) or []:
            if any(e.get("name") == CHANNEL_TOKEN for e in container.get("environment") or []):
                yield f"{CHANNEL_TOKEN} is a plain environment value; use secrets/valueFrom (Secrets Manager)"
            for secret in container.get("secrets") or []:
                source = secret.get("valueFrom")
                if secret.get("name") == CHANNEL_TOKEN and isinstance(source, str) \
                        and not _SECRETS_MANAGER_ARN.match(source):
                    yield f"{CHANNEL_TOKEN} must come from Secrets Manager (got valueFrom {source!r})"
            words = [*(container.get("command") or []), *(container.get("entryPoint") or [])]
            if any(CHANNEL_TOKEN in str(word) for word in words):
                yield f"{CHANNEL_TOKEN} is on a command line (visible in ps and DescribeTasks)"
    elif resource_type == "gcp:cloudrunv2/service:Service":
        for container in (props.get("template") or {}).get("containers") or []:
            for env in container.get("envs") or []:
                if env.get("name") == CHANNEL_TOKEN and "secretKeyRef" not in (env.get("valueSource") or {}):
                    yield f"{CHANNEL_TOKEN} is not a Secret Manager reference (valueSource.secretKeyRef)"
            if any(CHANNEL_TOKEN in str(word) for word in [*(container.get("args") or []),
                                                           *(container.get("commands") or [])]):
                yield f"{CHANNEL_TOKEN} is on a command line"
    elif resource_type == AZURE_CONTAINER_APP:
        for container in (props.get("template") or {}).get("containers") or []:
            for env in container.get("env") or []:
                if env.get("name") == CHANNEL_TOKEN and "secretRef" not in env:
                    yield f"{CHANNEL_TOKEN} is not a Container Apps secret reference (secretRef)"
    elif resource_type == "gcp:compute/instanceTemplate:InstanceTemplate":
        for key, value in (props.get("metadata") or {}).items():
            if key.lower().replace("-", "_") == CHANNEL_TOKEN.lower():
                yield f"metadata {key!r} holds the channel credential; name its secret version in bot-secrets"
            for found in re.findall(rf"{CHANNEL_TOKEN}=([^,\s'\"]*)", value if isinstance(value, str) else ""):
                if not _SECRET_VERSION.match(found):
                    yield f"metadata {key!r} sets {CHANNEL_TOKEN} to a value, not a Secret Manager version name"


def bot_sg_inline_ingress(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type == "aws:ec2/securityGroup:SecurityGroup" and props.get("description") == BOT_SG_DESCRIPTION:
        if props.get("ingress"):
            yield "the bot security group must not allow any ingress"


def sip_edge_sg_inline_ingress(resource_type: str, props: Props) -> Iterator[str]:
    """The edge's security group takes its ingress as separate rules, each of which sip_edge_sg_ports reads."""
    if resource_type == "aws:ec2/securityGroup:SecurityGroup" and props.get("description") == SIP_EDGE_SG_DESCRIPTION:
        if props.get("ingress"):
            yield ("the SIP edge's security group must not hold inline ingress: declare each rule as an "
                   "aws.vpc.SecurityGroupIngressRule, which the pack checks")


def gcp_bot_ingress(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type != "gcp:compute/firewall:Firewall" or props.get("direction", "INGRESS") != "INGRESS":
        return
    targets = props.get("targetTags") or []
    if not props.get("allows"):
        return  # a deny rule can only narrow access
    if BOT_TAG in targets or (not targets and not props.get("targetServiceAccounts")):
        yield "bot VMs must not accept inbound traffic (this rule reaches them)"


def _turn_boot_text(resource_type: str, props: Props) -> str | None:
    """The boot script that writes a TURN relay's coturn config, or None (not a relay / unknown)."""
    if resource_type == "aws:ec2/instance:Instance" and (props.get("tags") or {}).get("role") == TURN_ROLE:
        text = props.get("userData")
    elif resource_type == "gcp:compute/instance:Instance" and (props.get("labels") or {}).get("role") == TURN_ROLE:
        # The ForceNew boot script (a change re-creates the VM); older programs used the metadata key.
        text = props.get("metadataStartupScript") or (props.get("metadata") or {}).get("startup-script")
    elif resource_type == "azure-native:compute:VirtualMachine" and (props.get("tags") or {}).get("role") == TURN_ROLE:
        encoded = (props.get("osProfile") or {}).get("customData")  # base64, as ARM takes it
        try:
            text = base64.b64decode(encoded).decode() if isinstance(encoded, str) else None
        except ValueError:
            return "not base64"
    else:
        return None
    return text if isinstance(text, str) else None


def turn_not_open_relay(resource_type: str, props: Props) -> Iterator[str]:
    text = _turn_boot_text(resource_type, props)
    if text is None:
        return
    lines = {line.strip() for line in text.splitlines()}
    for required in TURN_REQUIRED:
        if required not in lines:
            yield f"TURN relay config lacks `{required}` (an open relay reaches private or metadata addresses)"
    for forbidden in TURN_FORBIDDEN:
        if any(line == forbidden or line.startswith(forbidden + "=") for line in lines):
            yield f"TURN relay config must not set `{forbidden}`"
    for quota in ("user-quota", "total-quota"):
        values = [line.split("=", 1)[1] for line in lines if line.startswith(quota + "=")]
        if not values or not values[0].isdigit() or int(values[0]) == 0:
            yield f"TURN relay config needs a positive {quota} (0 means unlimited)"


def _allowed_turn_port(protocol: str, port: str) -> bool:
    low, _, high = port.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        return False
    if protocol == "tcp":
        return not high and int(low) in TURN_TCP_PORTS
    return protocol == "udp" and (int(low) == 3478 or int(low) >= 1024)


def turn_firewall_ports(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type != "gcp:compute/firewall:Firewall" or TURN_TAG not in (props.get("targetTags") or []):
        return
    if props.get("direction", "INGRESS") != "INGRESS":
        return
    for allow in props.get("allows") or []:
        protocol, ports = allow.get("protocol", ""), allow.get("ports") or []
        if not ports or not all(_allowed_turn_port(protocol, str(p)) for p in ports):
            yield f"the TURN relay may accept only TURN ports (3478, 443/tcp, the UDP relay range), not {allow}"


def azure_turn_ports(resource_type: str, props: Props) -> Iterator[str]:
    """The Azure relay's network security group admits TURN ports only (tag `role: turn`)."""
    tags = props.get("tags") or {}
    if resource_type != "azure-native:network:NetworkSecurityGroup" or tags.get("role") != TURN_ROLE:
        return
    for rule in props.get("securityRules") or []:
        if _azure_inbound(rule, "allow") and not all(
                _allowed_turn_port(_word(rule.get("protocol")), str(port)) for port in _azure_ports(rule)):
            yield f"the TURN relay may accept only TURN ports (3478, 443/tcp, the UDP relay range), not {rule}"


def azure_secrets_in_key_vault(resource_type: str, props: Props) -> Iterator[str]:
    """A Container App's secrets are Key Vault references read with a managed identity, never values
    in its configuration (which ARM returns to anyone who may read the app)."""
    if resource_type == AZURE_CONTAINER_APP:
        for secret in (props.get("configuration") or {}).get("secrets") or []:
            if "value" in secret or not secret.get("keyVaultUrl") or not secret.get("identity"):
                yield f"app secret {secret.get('name')!r} must be a Key Vault reference (keyVaultUrl + identity)"


def azure_locked_down(resource_type: str, props: Props) -> Iterator[str]:
    """Registry without its admin user, Key Vault in RBAC mode and closed to the internet (its network
    rules deny by default), the store on TLS only."""
    if resource_type == "azure-native:containerregistry:Registry" and props.get("adminUserEnabled") is not False:
        yield "the container registry's admin user must be disabled (images are pulled with managed identities)"
    if resource_type == "azure-native:keyvault:Vault" \
            and (props.get("properties") or {}).get("enableRbacAuthorization") is not True:
        yield "the Key Vault must use RBAC (enableRbacAuthorization), not access policies"
    if resource_type == "azure-native:keyvault:Vault" \
            and ((props.get("properties") or {}).get("networkAcls") or {}).get("defaultAction") != "Deny":
        yield "the Key Vault's network rules must deny by default (its private endpoint, listed addresses at most)"
    if resource_type == "azure-native:redisenterprise:Database" and props.get("clientProtocol") != "Encrypted":
        yield "the store's database must speak TLS only (clientProtocol Encrypted)"


def gcp_sip_edge_firewall(resource_type: str, props: Props) -> Iterator[str]:
    """The GCP edge's ingress rules: what sip_edge_sg_ports takes on AWS, but the control API from a private
    range (the dispatcher's egress subnetwork: Cloud Run's Direct VPC egress has no tag or account a rule
    could name), each rule aimed at the edge itself, not at every VM of its network."""
    if resource_type != "gcp:compute/firewall:Firewall" or props.get("direction", "INGRESS") != "INGRESS" \
            or not _aimed_at_the_edge(props):
        return
    if not props.get("targetServiceAccounts") and not props.get("targetTags"):
        yield "a SIP edge rule reaches every VM of its network: aim it at the edge's service account"
    for key in ("sourceTags", "sourceServiceAccounts"):
        if props.get(key):
            # GCP admits a source in sourceRanges OR one with those tags/accounts: a VM of the network.
            yield (f"the SIP edge's rule also admits the network's VMs by {key} {props[key]}: name the trunks' "
                   "or the dispatcher's networks in sourceRanges only")
    for allow in props.get("allows") or []:
        protocol, ranges = _word(allow.get("protocol")), _port_ranges(_gcp_ports(allow))
        if ranges is None:
            yield f"the SIP edge's rule opens {allow} (SIP, RTP and the control API only)"
            continue
        for (low, high), cidr in itertools.product(ranges, props.get("sourceRanges") or ["0.0.0.0/0"]):
            yield from _edge_rule_problems(protocol, low, high, cidr, props.get("description"))


def _edge_rule_problems(protocol: str, low: int, high: int, cidr: Any, description: Any) -> Iterator[str]:
    """One port range of a GCP or Azure edge rule from one source: the control API alone (TCP, that one port)
    from a private range is held to the dispatcher's subnet's width; anything else is read as AWS's rules are."""
    if protocol == "tcp" and low == high == SIP_EDGE_CONTROL_PORT and _private(cidr):
        yield from _control_range(cidr)
        return
    rule = {"ipProtocol": protocol, "fromPort": low, "toPort": high, "cidrIpv4": cidr, "description": description}
    if (problem := _sip_edge_rule(rule)) is not None:
        yield f"the SIP edge's rule {problem}"


PortRange = tuple[int, int]
ALL_PORTS: PortRange = (0, 65535)


def _port_ranges(values: list[Any]) -> list[PortRange] | None:
    """Ports as the providers take them, as integer ranges: "5080", "5080-5080", "5000-5100", "*" (every port).
    None: one is no port (unknown at preview, or malformed), which the callers refuse or skip."""
    found: list[PortRange] = []
    for value in values:
        text = str(value).strip()
        if text == "*":
            found.append(ALL_PORTS)
            continue
        low, dash, high = (part.strip() for part in text.partition("-"))
        high = high if dash else low
        if not low.isdigit() or not high.isdigit():
            return None
        found.append((int(low), int(high)))
    return found


def _opens_control(protocol: Any, ranges: list[PortRange] | None) -> bool:
    """Whether a rule's protocol and ports reach the edge's control API (TCP 5080): one port, a range holding
    it, every port, TCP or every protocol. The one test of it, whatever the rule's spelling."""
    return _word(protocol) in ("tcp", "6", "all", "*") and ranges is not None \
        and any(low <= SIP_EDGE_CONTROL_PORT <= high for low, high in ranges)


def _gcp_ports(allow: Props) -> list[Any]:
    return list(allow.get("ports") or ["0-65535"])  # no ports: every port of the protocol


def _word(value: Any) -> str:
    """An enum value as the providers compare it: Azure's network provider takes `Allow`, `allow` and `ALLOW`
    alike (the SDK's enums are plain strings), GCP its protocols in either case."""
    return str(value if value is not None else "").strip().lower()


def _azure_inbound(rule: Props, access: str) -> bool:
    return _word(rule.get("direction")) == "inbound" and _word(rule.get("access")) == access


def _azure_ports(rule: Props, missing: Any = "*") -> list[Any]:
    """A rule's destination ports: its list (`destinationPortRanges`) or its one port or range."""
    return list(rule.get("destinationPortRanges") or [rule.get("destinationPortRange", missing)])


def _aimed_at_the_edge(props: Props) -> bool:
    """A rule the edge's (its description) or one that reaches the edge (its service account as a target)."""
    accounts = props.get("targetServiceAccounts") or []
    return str(props.get("description", "")).startswith(SIP_EDGE_RULE) \
        or any(isinstance(a, str) and SIP_EDGE_ACCOUNT.match(a) for a in accounts)


def azure_sip_edge_rules(resource_type: str, props: Props) -> Iterator[str]:
    """The Azure edge's network security group (tag `role: sip-edge`): the GCP edge's rules, each inbound allow
    of the group read as one rule per source network. A group the edge's NIC uses without the tag: the stack
    check `azure_sip_edge_nic_groups`."""
    if resource_type == AZURE_NSG and _edge_tagged(props):
        yield from _azure_edge_group_problems(props)


def _azure_edge_group_problems(props: Props) -> Iterator[str]:
    rules = props.get("securityRules") or []
    if not any(_denies_all_inbound(found) for found in rules):
        yield (f"the SIP edge's group needs an inbound Deny of every source, protocol and port (priority at most "
               f"{AZURE_LOWEST_CUSTOM_PRIORITY}): without it Azure's AllowVnetInBound (65000) admits the whole "
               "network and its peers to SIP, RTP and the control API")
    for found in rules:
        yield from _azure_edge_rule(found)


def _azure_edge_rule(found: Props) -> Iterator[str]:
    """One rule of the Azure edge's group, inline or standalone: each inbound allow read as one rule per source
    network."""
    if not _azure_inbound(found, "allow"):
        return
    protocol, ports = _word(found.get("protocol")), _azure_ports(found)
    ranges = _port_ranges(ports)
    if protocol not in ("udp", "tcp") or ranges is None:
        yield f"the SIP edge's rule opens {protocol} {','.join(map(str, ports))} (SIP, RTP and the control API only)"
        return
    for (low, high), cidr in itertools.product(ranges, _azure_sources(found)):
        source = "0.0.0.0/0" if _word(cidr) in ("*", "internet") else cidr
        yield from _edge_rule_problems(protocol, low, high, source, found.get("description"))


def _azure_sources(rule: Props) -> list[Any]:
    return list(rule.get("sourceAddressPrefixes") or [rule.get("sourceAddressPrefix", "*")])


def _denies_all_inbound(rule: Props) -> bool:
    priority = rule.get("priority")
    sources = rule.get("sourceAddressPrefixes") or [rule.get("sourceAddressPrefix")]
    return _azure_inbound(rule, "deny") and _word(rule.get("protocol")) == "*" \
        and _port_ranges(_azure_ports(rule, None)) == [ALL_PORTS] and "*" in sources \
        and rule.get("destinationAddressPrefix", "*") == "*" \
        and isinstance(priority, (int, float)) and priority <= AZURE_LOWEST_CUSTOM_PRIORITY


def _control_range(cidr: Any) -> Iterator[str]:
    """The control API's private source: the dispatcher's subnet, no wider (an IPv4 /23, an IPv6 /64)."""
    network = ipaddress.ip_network(str(cidr), strict=False)
    widest = SIP_EDGE_CONTROL_WIDEST_PREFIX if network.version == 4 else SIP_EDGE_CONTROL_WIDEST_PREFIX_V6
    if network.prefixlen < widest:
        yield (f"the SIP edge's rule opens the control API (TCP {SIP_EDGE_CONTROL_PORT}) to {cidr}, wider than "
               f"/{widest}: admit the dispatcher's own subnet only")


def _private(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).is_private
    except ValueError:
        return False


RESOURCE_CHECKS: dict[str, tuple[str, Check]] = {
    "no-iam-wildcard-actions": ("IAM policies name their actions", iam_wildcard_actions),
    "no-all-permission-roles": ("No GCP basic role and no Azure Owner, Contributor or access administrator role is "
                                "granted", all_permission_roles),
    "ecr-scan-on-push": ("ECR repositories scan images on push", ecr_scan_on_push),
    "log-group-retention": ("CloudWatch log groups have a retention period", log_group_retention),
    "required-tags": ("Resources carry the project/stack/environment/managed-by tags or labels", required_tags),
    "no-plaintext-secrets-in-env": ("Secrets reach containers by reference, not as env values",
                                    plaintext_secret_env),
    "bot-channel-token-by-reference": ("The bot channel credential reaches containers and VMs by secret reference only",
                                       channel_token_by_reference),
    "no-bot-sg-inline-ingress": ("The bot security group has no inline ingress", bot_sg_inline_ingress),
    "no-sip-edge-sg-inline-ingress": ("The SIP edge's security group has no inline ingress",
                                      sip_edge_sg_inline_ingress),
    "no-gcp-bot-ingress": ("No firewall rule lets traffic into bot VMs", gcp_bot_ingress),
    "sip-edge-gcp-edge-ports-only": ("The GCP SIP edge's firewall opens SIP from the trunks, RTP and control only",
                                     gcp_sip_edge_firewall),
    "sip-edge-azure-edge-ports-only": ("The Azure SIP edge's security group opens SIP from the trunks, RTP and "
                                       "control only", azure_sip_edge_rules),
    "turn-not-open-relay": ("A TURN relay authenticates, denies private/metadata peers and has quotas",
                            turn_not_open_relay),
    "turn-gcp-ingress-turn-ports-only": ("The TURN relay's firewall opens TURN ports only", turn_firewall_ports),
    "azure-app-secrets-in-key-vault": ("Container Apps secrets are Key Vault references", azure_secrets_in_key_vault),
    "turn-azure-ingress-turn-ports-only": ("The Azure TURN relay's security group opens TURN ports only",
                                          azure_turn_ports),
    "azure-locked-down": ("Registry admin user off, Key Vault in RBAC mode off the internet, store on TLS only",
                          azure_locked_down),
}


def _resource_validator(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def bot_sg_standalone_ingress(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Standalone ingress rules attached to the bot SG (found through property dependencies)."""
    for resource in _ingress_into(args, BOT_SG_DESCRIPTION):
        report_violation(f"{resource.name} opens the bot security group to inbound traffic", resource.urn)


INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"  # `type` ingress or egress, older fields


def _ingress_into(args: StackValidationArgs, description: str) -> Iterator[PolicyResource]:
    """The ingress rules on the security group of that description (found through dependencies), in
    either resource type: a legacy one the callers refuse rather than read (its fields differ)."""
    for resource in args.resources:
        legacy_ingress = resource.resource_type == LEGACY_RULE and resource.props.get("type") != "egress"
        if resource.resource_type != INGRESS_RULE and not legacy_ingress:
            continue
        groups = resource.property_dependencies.get("securityGroupId", [])
        if any(group.props.get("description") == description for group in groups):
            yield resource


def turn_sg_ports(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Ingress rules on the relay's security group open TURN ports only."""
    for resource in _ingress_into(args, TURN_SG_DESCRIPTION):
        if resource.resource_type == LEGACY_RULE:
            report_violation(f"{resource.name} {_LEGACY} on the TURN relay", resource.urn)
            continue
        props = resource.props
        protocol, low, high = props.get("ipProtocol"), props.get("fromPort"), props.get("toPort")
        port = f"{low}" if low == high else f"{low}-{high}"
        if not isinstance(low, (int, float)) or not _allowed_turn_port(str(protocol), port.replace(".0", "")):
            report_violation(f"{resource.name} opens {protocol} {port} on the TURN relay (TURN ports only)",
                             resource.urn)


def sip_edge_sg_ports(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Ingress on the SIP edge's security group: SIP (UDP 5060, and over TLS one TCP port) from networks
    no wider than a /16 (unless the rule says the trunk allows any source), RTP (UDP, above 1023) from
    networks no wider than a /16 (unless the rule says the trunk allows any media source), and the
    control API (TCP 5080) from the dispatcher's tasks' security group only (not the bots', not one the
    pack cannot see); nothing else (no SSH)."""
    for resource in _ingress_into(args, SIP_EDGE_SG_DESCRIPTION):
        if resource.resource_type == LEGACY_RULE:
            report_violation(f"{resource.name} {_LEGACY} on the SIP edge", resource.urn)
        elif (problem := _sip_edge_rule(resource.props) or _control_group(resource)) is not None:
            report_violation(f"{resource.name} {problem} on the SIP edge", resource.urn)


_LEGACY = ("is an aws.ec2.SecurityGroupRule, which the pack does not read: declare it as an "
           "aws.vpc.SecurityGroupIngressRule")


def _control_group(resource: PolicyResource) -> str | None:
    """A control rule's group: the dispatcher's tasks', as the rule's dependency shows it."""
    props = resource.props
    if props.get("ipProtocol") != "tcp" or props.get("fromPort") != SIP_EDGE_CONTROL_PORT \
            or props.get("referencedSecurityGroupId") is None:
        return None
    groups = resource.property_dependencies.get("referencedSecurityGroupId", [])
    if groups and all(group.props.get("description") == DISPATCHER_SG_DESCRIPTION for group in groups):
        return None
    named = ", ".join(str(group.props.get("description")) for group in groups) or "a group this stack does not make"
    return (f"opens the control API (TCP {SIP_EDGE_CONTROL_PORT}) to {named}: the dispatcher's tasks' group "
            f"({DISPATCHER_SG_DESCRIPTION!r}) only")


def _wide(cidr: Any) -> bool:
    """A network wider than SIP_EDGE_WIDEST_PREFIX, or none (a security group, unknown, refused as wide)."""
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen < SIP_EDGE_WIDEST_PREFIX
    except ValueError:
        return True


def _sip_edge_rule(props: Props) -> str | None:
    protocol, low, high = props.get("ipProtocol"), props.get("fromPort"), props.get("toPort")
    cidr, group = props.get("cidrIpv4"), props.get("referencedSecurityGroupId")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        return None  # unknown at preview
    if protocol == "udp" and low == high == SIP_EDGE_SIP_PORT:
        if _wide(cidr) and not _asked_for_any_source(cidr, props.get("description")):
            return f"opens SIP to {cidr or group} (toll-fraud scanners): the trunks' sources only"
        return None
    if protocol == "udp" and low >= 1024 and high != SIP_EDGE_SIP_PORT and not low <= SIP_EDGE_SIP_PORT <= high:
        if _wide(cidr) and SIP_EDGE_ANY_MEDIA_SOURCE not in str(props.get("description", "")):
            return (f"opens RTP to {cidr or group} (anyone there takes over a call's audio): the trunks' "
                    "media ranges only")
        return None
    if protocol == "tcp" and low == high == SIP_EDGE_CONTROL_PORT and cidr is None and group:
        return None
    if protocol == "tcp" and low == high != SIP_EDGE_CONTROL_PORT and low >= 1024 and cidr is not None \
            and _tls_port(props.get("description")) == low:
        # SIP over TLS (the edge's tlsPort, as the stack marks it), held to the trunks' sources as SIP over UDP is.
        if _wide(cidr) and not _asked_for_any_source(cidr, props.get("description")):
            return f"opens SIP over TLS (TCP {int(low)}) to {cidr} (toll-fraud scanners): the trunks' sources only"
        return None
    return f"opens {protocol} {int(low)}-{int(high)} from {cidr or group} (SIP, RTP and the control API only)"


def _asked_for_any_source(cidr: Any, description: Any) -> bool:
    """Whether a SIP rule's wide network is one a trunk asked for: any network with allowAnySource, or any address
    exactly for a credential trunk without sources (SIP_EDGE_CREDENTIAL_SOURCE)."""
    said = str(description or "")
    return SIP_EDGE_ANY_SOURCE in said or (SIP_EDGE_CREDENTIAL_SOURCE in said and str(cidr) in SIP_EDGE_ANY_ADDRESS)


def _tls_port(description: Any) -> int | None:
    """The edge's tlsPort its SIP-over-TLS rule names (SIP_EDGE_TLS_MARK), or None on any other rule."""
    found = SIP_EDGE_TLS_MARK.search(str(description or ""))
    return int(found.group(1)) if found else None


AZURE_NSG = "azure-native:network:NetworkSecurityGroup"
AZURE_SECURITY_RULE = "azure-native:network:SecurityRule"  # a rule of its own on a group
AZURE_NIC = "azure-native:network:NetworkInterface"
AZURE_VNET, AZURE_SUBNET = "azure-native:network:VirtualNetwork", "azure-native:network:Subnet"
# Container Apps' infrastructure subnet is delegated to its environments (stacks/azure/network.py `dispatcher`):
# the one subnet an app's calls to a private address leave from.
CONTAINER_APPS_DELEGATION = "Microsoft.App/environments"
GCP_FIREWALL, GCP_SUBNETWORK = "gcp:compute/firewall:Firewall", "gcp:compute/subnetwork:Subnetwork"
CLOUD_RUN_SERVICE = "gcp:cloudrunv2/service:Service"  # its template's Direct VPC egress names its subnetwork


def _edge_tagged(props: Props) -> bool:
    """Tagged as the Azure edge's (stacks/azure/sip_edge.py tags each of its resources, its group and NIC too)."""
    return (props.get("tags") or {}).get("role") == SIP_EDGE_ROLE


def _azure_edge_nics(resources: list[PolicyResource]) -> list[PolicyResource]:
    return [resource for resource in resources if resource.resource_type == AZURE_NIC and _edge_tagged(resource.props)]


def _nic_groups(nic: PolicyResource) -> list[PolicyResource]:
    """The groups a NIC uses, as the dependency of its `networkSecurityGroup` input records them."""
    return [group for group in nic.property_dependencies.get("networkSecurityGroup", [])
            if group.resource_type == AZURE_NSG]


def _azure_edge_groups(resources: list[PolicyResource]) -> list[PolicyResource]:
    """The Azure edge's groups: those tagged as the edge's, and whatever group the edge's NIC uses, tagged or not
    (shared with another role, made without the tag: the edge's door all the same)."""
    found = {resource.urn: resource for resource in resources
             if resource.resource_type == AZURE_NSG and _edge_tagged(resource.props)}
    for nic in _azure_edge_nics(resources):
        for group in _nic_groups(nic):
            found.setdefault(group.urn, group)  # the stack's own, where it holds it
    return list(found.values())


def azure_sip_edge_nic_groups(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The Azure edge's NIC is on a group of this stack, which the pack reads as the edge's: one without the tag
    (which `azure_sip_edge_rules` reads) is read here; a NIC on no group the stack makes is refused."""
    for nic in _azure_edge_nics(args.resources):
        groups = _nic_groups(nic)
        if not groups:
            report_violation(f"{nic.name}: the SIP edge's NIC is on no network security group this stack makes, "
                             "which the pack cannot read: attach the edge's group (stacks/azure/sip_edge.py) by "
                             "its id", nic.urn)
        for group in groups:
            if not _edge_tagged(group.props):
                for problem in _azure_edge_group_problems(group.props):
                    report_violation(f"{group.name} (the SIP edge's NIC {nic.name} uses it): {problem}", group.urn)


def _on_an_edge_group(rule: PolicyResource, groups: list[PolicyResource]) -> bool:
    """A standalone rule on one of the Azure edge's groups: through its dependency on the group, or by the
    group's name (in the same resource group, where both are known)."""
    if rule.resource_type != AZURE_SECURITY_RULE:
        return False
    edge = {group.urn for group in groups}
    if any(group.urn in edge for group in rule.property_dependencies.get("networkSecurityGroupName", [])):
        return True
    name, home = rule.props.get("networkSecurityGroupName"), rule.props.get("resourceGroupName")
    return isinstance(name, str) and any(
        group.props.get("networkSecurityGroupName") == name
        and (not isinstance(home, str) or group.props.get("resourceGroupName") in (None, home)) for group in groups)


def azure_sip_edge_standalone_rules(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A standalone SecurityRule on the Azure edge's group opens the edge as an inline one does (Azure reads the
    group's rules and its standalone ones as one list): read each as the group's own rules are."""
    groups = _azure_edge_groups(args.resources)
    for resource in args.resources:
        if _on_an_edge_group(resource, groups):
            for problem in _azure_edge_rule(resource.props):
                report_violation(f"{resource.name}: {problem}", resource.urn)


def sip_edge_control_sources(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every private source the GCP or Azure edge's control API (TCP 5080) admits lies in the dispatcher's own
    subnet as this stack declares it (Azure: the subnet delegated to Container Apps' environments; GCP: the
    subnetwork the Cloud Run service's Direct VPC egress sends from). Another subnet of the network (the TURN
    relay's, which faces the internet; the edge's own) is as private and as narrow, and must not reach it."""
    groups = _azure_edge_groups(args.resources)
    azure = [*((group, rule) for group in groups for rule in group.props.get("securityRules") or []),
             *((rule, rule.props) for rule in args.resources if _on_an_edge_group(rule, groups))]
    azure_subnets = _azure_dispatcher_subnets(args.resources)
    for resource, rule in azure:
        if _azure_control(rule):
            for cidr in _azure_sources(rule):
                if (problem := _control_outside(cidr, azure_subnets, "the Container Apps environment's")) is not None:
                    report_violation(f"{resource.name}: {problem}", resource.urn)
    gcp_subnets = _gcp_dispatcher_subnets(args.resources)
    for resource in args.resources:
        props = resource.props
        if resource.resource_type != GCP_FIREWALL or props.get("direction", "INGRESS") != "INGRESS" \
                or not _aimed_at_the_edge(props):
            continue
        if any(_opens_control(allow.get("protocol"), _port_ranges(_gcp_ports(allow)))
               for allow in props.get("allows") or []):
            for cidr in props.get("sourceRanges") or []:
                if (problem := _control_outside(cidr, gcp_subnets, "the Cloud Run egress")) is not None:
                    report_violation(f"{resource.name}: {problem}", resource.urn)


def _azure_control(rule: Props) -> bool:
    return _azure_inbound(rule, "allow") and _opens_control(rule.get("protocol"), _port_ranges(_azure_ports(rule)))


def _azure_dispatcher_subnets(resources: list[PolicyResource]) -> list[Network]:
    found: list[Network] = []
    for resource in resources:
        subnets = resource.props.get("subnets") or [] if resource.resource_type == AZURE_VNET \
            else [resource.props] if resource.resource_type == AZURE_SUBNET else []
        for subnet in subnets:
            delegations = subnet.get("delegations") or [] if isinstance(subnet, Mapping) else []
            if any(isinstance(d, Mapping) and d.get("serviceName") == CONTAINER_APPS_DELEGATION for d in delegations):
                found += _networks(subnet.get("addressPrefixes") or [subnet.get("addressPrefix")])
    return found


def _gcp_dispatcher_subnets(resources: list[PolicyResource]) -> list[Network]:
    found: list[Network] = []
    for resource in resources:
        if resource.resource_type == CLOUD_RUN_SERVICE:
            for subnetwork in resource.property_dependencies.get("template", []):
                if subnetwork.resource_type == GCP_SUBNETWORK:
                    props = subnetwork.props
                    found += _networks([props.get("ipCidrRange"), props.get("internalIpv6Prefix")])
    return found


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(values: list[Any]) -> list[Network]:
    found: list[Network] = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            continue  # none, or unknown at preview
    return found


def _within(network: Network, subnet: Network) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(subnet, ipaddress.IPv4Network):
        return network.subnet_of(subnet)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(subnet, ipaddress.IPv6Network):
        return network.subnet_of(subnet)
    return False


def _control_outside(cidr: Any, subnets: list[Network], whose: str) -> str | None:
    """Why a private control source is not the dispatcher's subnet (None: it is, or it is not private, which the
    edge's rule checks refuse on their own)."""
    if not _private(cidr):
        return None
    network = ipaddress.ip_network(str(cidr), strict=False)
    if any(_within(network, subnet) for subnet in subnets):
        return None
    declared = ", ".join(map(str, subnets)) or "this stack declares none"
    return (f"the SIP edge's rule opens the control API (TCP {SIP_EDGE_CONTROL_PORT}) to {cidr}, outside the "
            f"dispatcher's own subnet ({whose}: {declared}): admit that subnet only")


POLICIES = [
    *(ResourceValidationPolicy(name=name, description=description, validate=_resource_validator(check),
                               enforcement_level=EnforcementLevel.MANDATORY)
      for name, (description, check) in RESOURCE_CHECKS.items()),
    StackValidationPolicy(name="no-bot-sg-ingress-rules", description="No ingress rule targets the bot security group",
                          validate=bot_sg_standalone_ingress, enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy(name="sip-edge-sg-edge-ports-only",
                          description="The SIP edge's security group opens SIP from the trunks, RTP and control only",
                          validate=sip_edge_sg_ports, enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy(name="sip-edge-azure-standalone-rules",
                          description="A standalone rule on the Azure SIP edge's group is checked as its own rules are",
                          validate=azure_sip_edge_standalone_rules, enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy(name="sip-edge-azure-nic-groups",
                          description="The Azure SIP edge's NIC is on a group of this stack, read as the edge's",
                          validate=azure_sip_edge_nic_groups, enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy(name="sip-edge-control-from-the-dispatcher",
                          description="The GCP and Azure SIP edge's control API admits the dispatcher's subnet only",
                          validate=sip_edge_control_sources, enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy(name="turn-sg-turn-ports-only",
                          description="The TURN relay's security group opens TURN ports only",
                          validate=turn_sg_ports, enforcement_level=EnforcementLevel.MANDATORY),
]
