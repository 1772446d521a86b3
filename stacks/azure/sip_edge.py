"""SipEdge (Azure): `python -m sipedge` on one Linux VM with a Standard static public address, as the AWS
and GCP stacks run it (stacks/aws/sip_edge.py, stacks/gcp/sip_edge.py): RTP takes a port per call, which
no load balancer in front of Container Apps passes (docs/sip.md, "On Azure", has the why of each rule).

Where it lives: the stack network's `sip` subnet (stacks/azure/network.py); an app's calls to a private
address leave from the `dispatcher` subnet, so the control port (TCP 5080) admits that range only. The
network security group, on the edge's network interface:
- in: UDP 5060 (and TCP `tlsPort` with TLS) from the trunks' `sources`, the workers' RTP ports from their
  `mediaSources`, then a deny of everything else, no SSH;
- out: UDP to the trunks' networks, TCP 443 to the internet and to the private endpoints' subnet (Key
  Vault), then a deny of everything else.
Azure's host addresses (169.254.169.254, 168.63.129.16) pass a group's ordinary rules: the host's
nftables keeps the edge's user from both, but for DNS on the wireserver (stacks/shared/sip_edge_host.py).

Its identity: a user-assigned managed identity with Key Vault Secrets User on each of the edge's secrets
(the vault holds the dispatcher's and bots' secrets too) and AcrPull on the stack's registry, nothing
else. Trusted Launch, no password, no SSH rule; the SSH key Azure requires is made by pulumi-tls and
held only by the state.

Its addresses: a Standard static public IP (`protect`ed on a protected stack) and a static private one
(the dispatcher's SIP_EDGE_URL), on a network interface of their own, kept when the VM is replaced.
Azure never changes a VM's `customData`, so a changed boot script replaces the VM, the old one deleted
first: its calls in flight end (the plan says so).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.compute as azure_compute
import pulumi_azure_native.managedidentity as azure_managedidentity
import pulumi_azure_native.network as azure_network
import pulumi_tls as tls

from stacks.azure import naming
from stacks.azure.identity import ACR_PULL, built_in_role
from stacks.azure.relay import ADMIN, DEBIAN
from stacks.azure.secrets import SecretStore
from stacks.azure.sip_edge_boot import WIRESERVER, boot_functions, registry_login
from stacks.config.sip_edge import CONTROL_PORT, SIP_PORT, SipEdgeSettings, render, tls_rule_mark
from stacks.shared import sip_edge_host

SIP_EDGE_ROLE = "sip-edge"  # tag `role` (stacks/tools/preflight/replacements.py HOST_ROLES)
# Azure RBAC assignments take effect "up to 10 minutes" after they are made
# (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting): 9 tries, 2 to 256 s apart.
TRIES = 9
# The edge's user may still ask the wireserver for names: it is the network's DNS resolver.
WIRESERVER_DNS = tuple(f"ip daddr {WIRESERVER} {port}" for port in ("udp dport 53", "tcp dport 53"))
DENY_PRIORITY = 4000  # below every allow of the edge's, above Azure's default rules (65000 and up)


@dataclass(frozen=True)
class SipEdgeArgs:
    edge: SipEdgeSettings
    subnet_id: pulumi.Input[str]  # the network's `sip` subnet
    subnet_range: str  # its CIDR: the private address is its first usable one
    subscription_id: str
    resource_group: pulumi.Input[str]
    location: str
    dispatcher_range: str  # Container Apps' infrastructure subnet, whence its calls to private addresses come
    vault_range: str  # the private endpoints' subnet, where Key Vault answers
    secrets: SecretStore
    identity_name: str
    tags: dict[str, str]
    protect: bool = False  # the stack's `protect`: the address every trunk names


def private_address(subnet_range: str) -> str:
    """The edge's static private address: the subnet's first usable one (Azure keeps .0 to .3)."""
    return str(ipaddress.ip_network(subnet_range).network_address + 4)


def control_url_of(subnet_range: str) -> str:
    """The edge's control API on its static private address: known before the vault, which holds the edge's
    credentials derived for it."""
    return f"http://{private_address(subnet_range)}:{CONTROL_PORT}"


def security_rules(edge: SipEdgeSettings, dispatcher_range: str, vault_range: str) -> list[dict[str, Any]]:
    """The edge's rules, in and out (the module's docstring)."""
    low, high = edge.rtp_ports_used

    def rule(name: str, priority: int, direction: str, access: str, protocol: str, ports: str,
             sources: list[str] | None = None, destinations: list[str] | None = None,
             wide: Sequence[str] = (), mark: str = "") -> dict[str, Any]:
        # A network wider than a /16 says why (`wide`: a trunk's opt-in, a credential trunk without sources), and
        # the TLS rule names its port (`mark`), which the policy pack reads.
        marks = ([mark] if mark else []) + list(wide)
        note = f" ({'; '.join(marks)})" if marks else ""
        found: dict[str, Any] = {"name": name, "priority": priority, "direction": direction, "access": access,
                                 "protocol": protocol, "source_port_range": "*",
                                 "description": f"sip edge: {name}{note}"}
        # One port or range is a range, several are ranges (ARM takes one form or the other).
        found |= ({"destination_port_range": ports} if "," not in ports
                  else {"destination_port_ranges": ports.split(",")})
        # One network is a prefix, several are prefixes (ARM takes one form or the other).
        for side, ranges in (("source", sources or ["*"]), ("destination", destinations or ["*"])):
            found |= ({f"{side}_address_prefix": ranges[0]} if len(ranges) == 1
                      else {f"{side}_address_prefixes": ranges})
        return found

    signalling = sorted({why for why in edge.sources.values() if why})
    inbound = [rule("sip-in", 100, "Inbound", "Allow", "Udp", str(SIP_PORT), sources=sorted(edge.sources),
                    wide=signalling),
               rule("rtp-in", 110, "Inbound", "Allow", "Udp", f"{low}-{high}", sources=sorted(edge.media_sources),
                    wide=["a trunk's allowAnyMediaSource"] if any(edge.media_sources.values()) else []),
               # The dispatcher's calls to the control API, and nothing else to it.
               rule("control-in", 120, "Inbound", "Allow", "Tcp", str(CONTROL_PORT), sources=[dispatcher_range])]
    tls = edge.key.tls_port
    tls_ports = ",".join(sorted({str(port) for dialled in edge.tls_egress.values() for port in dialled}))
    if tls is not None:  # SIP over TLS from the trunks' sources alone, as SIP over UDP
        inbound.append(rule("tls-in", 130, "Inbound", "Allow", "Tcp", str(tls), sources=sorted(edge.sources),
                            wide=signalling, mark=tls_rule_mark(tls)))
    # UDP out to the trunks alone (SIP to a termination URI or registrar, among their sources; RTP to their
    # media), HTTPS to the internet and Key Vault's endpoint: a compromised edge reaches nothing else in the
    # network (the store's endpoint, the bots, the relay).
    outbound = [rule("udp-out", 100, "Outbound", "Allow", "Udp", "*",
                     destinations=edge.udp_egress),
                *([rule("tcp-out", 105, "Outbound", "Allow", "Tcp", tls_ports, destinations=sorted(edge.tls_egress))]
                  if edge.tls_egress else []),  # a sips: URI or registrar is dialled over TLS: its ports alone
                rule("https-out", 110, "Outbound", "Allow", "Tcp", "443", destinations=["Internet"]),
                rule("vault-out", 120, "Outbound", "Allow", "Tcp", "443", destinations=[vault_range])]
    return [*inbound, rule("deny-other-in", DENY_PRIORITY, "Inbound", "Deny", "*", "*"),
            *outbound, rule("deny-other-out", DENY_PRIORITY, "Outbound", "Deny", "*", "*")]


class SipEdge(pulumi.ComponentResource):
    """Made in two steps, as on AWS and GCP: the addresses, rules and identity (before the dispatcher, which
    is told the control URL), then `run` the VM (after it, whose URL the edge is told)."""

    public_ip: pulumi.Output[str]
    private_ip: str
    control_url: str

    def __init__(self, name: str, args: SipEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:SipEdge", name, None, opts)
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)
        edge = args.edge
        tags = {**args.tags, "role": SIP_EDGE_ROLE}
        self._common: dict[str, Any] = {"resource_group_name": args.resource_group, "location": args.location,
                                        "tags": tags}
        group = azure_network.NetworkSecurityGroup(
            name, security_rules=cast(Any, security_rules(edge, args.dispatcher_range, args.vault_range)),
            **self._common, opts=child)
        # Every trunk's origination URI names the public address: a protected stack keeps it from an accidental
        # replace or destroy, as it keeps its data.
        address = azure_network.PublicIPAddress(
            name, sku={"name": "Standard"}, public_ip_allocation_method="Static", public_ip_address_version="IPv4",
            **self._common, opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.private_ip = private_address(args.subnet_range)
        self._nic = azure_network.NetworkInterface(
            name, network_security_group={"id": group.id},
            ip_configurations=[{"name": "primary", "subnet": {"id": args.subnet_id}, "primary": True,
                                "private_ip_allocation_method": "Static", "private_ip_address": self.private_ip,
                                "public_ip_address": {"id": address.id}}],
            **self._common, opts=child)
        self._identity = azure_managedidentity.UserAssignedIdentity(
            name, resource_name_=args.identity_name, **self._common, opts=child)
        self.public_ip = address.ip_address.apply(lambda ip: ip or "")
        self.control_url = control_url_of(args.subnet_range)

    def run(self, *, dispatcher_url: pulumi.Input[str], image: pulumi.Input[str], registry_id: pulumi.Input[str],
            registry: pulumi.Input[str]) -> None:
        """The VM: its grants, its boot script and the VM on the edge's network interface."""
        name, args, edge = self._name, self._args, self._args.edge
        child = pulumi.ResourceOptions(parent=self)
        names = edge.secret_names()
        readable = args.secrets.grant_access("sip-edge", self._identity.principal_id, names)
        # ACR grants a registry, not a repository: the stack's one registry (the bots' images are in it too,
        # and hold no secret: a bot's keys are Key Vault's).
        pull = azure_authorization.RoleAssignment(
            f"{name}-pull",
            role_assignment_name=naming.guid(args.subscription_id, f"{args.identity_name}/assignment/pull"),
            principal_id=self._identity.principal_id, principal_type="ServicePrincipal",
            role_definition_id=built_in_role(args.subscription_id, ACR_PULL), scope=registry_id, opts=child)
        uris = [args.secrets.uris[env] for env in names]

        def script(values: list[str]) -> str:
            url, public_ip, image_ref, server, client_id, found = (values[0], values[1], values[2], values[3],
                                                                   values[4], values[5:])
            config = render(edge, dispatcher_url=url, sip_address=self.private_ip, public_address=public_ip)
            steps = sip_edge_host.HostSteps(
                packages="curl python3",
                fetch_function=boot_functions(dict(zip(names, found, strict=True)), client_id, server),
                registry_login=registry_login(server), secret_tries=TRIES, pull_tries=TRIES,
                metadata_keep=WIRESERVER_DNS, metadata_blocked=(sip_edge_host.METADATA, WIRESERVER),
                apt_over_https=True)
            text = sip_edge_host.edge_boot_script(edge, "azure", config=config, image=image_ref, steps=steps,
                                                    secrets=names)
            return base64.b64encode(text.encode()).decode()

        values = [dispatcher_url, self.public_ip, image, registry, self._identity.client_id, *uris]
        sip_edge_host.refused_now(script, len(values))
        custom_data = pulumi.Output.all(*values).apply(script)
        # Azure requires a credential on a Linux VM; no rule admits SSH and no one holds this key but the state.
        key = tls.PrivateKey(f"{name}-ssh", algorithm="RSA", rsa_bits=3072, opts=child)
        profiles: dict[str, Any] = dict(
            hardware_profile={"vm_size": edge.host_type},
            identity={"type": "UserAssigned", "user_assigned_identities": [self._identity.id]},
            network_profile={"network_interfaces": [{"id": self._nic.id, "primary": True}]},
            os_profile={"computer_name": "sip-edge", "admin_username": ADMIN, "custom_data": custom_data,
                        "linux_configuration": {"disable_password_authentication": True, "ssh": {"public_keys": [{
                            "path": f"/home/{ADMIN}/.ssh/authorized_keys", "key_data": key.public_key_openssh}]}}},
            # Boot diagnostics in a managed account: the serial log names a secret or image the boot could not
            # read (never a value), the only place a failed boot says so.
            diagnostics_profile={"boot_diagnostics": {"enabled": True}},
            security_profile={"security_type": "TrustedLaunch",
                              "uefi_settings": {"secure_boot_enabled": True, "v_tpm_enabled": True}},
            storage_profile={"image_reference": DEBIAN,
                             "os_disk": {"create_option": "FromImage", "delete_option": "Delete",
                                         "managed_disk": {"storage_account_type": "StandardSSD_LRS"}}})
        azure_compute.VirtualMachine(
            name, **profiles, **self._common,
            # customData cannot change on a VM (ARM: PropertyChangeNotAllowed): a change replaces it, the old one
            # deleted first (the network interface, with both addresses, takes one VM). It boots once its
            # identity may read its secrets and pull (the boot still retries while the grants propagate).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*readable, pull, *args.secrets.ready],
                                        replace_on_changes=["osProfile.customData"], delete_before_replace=True),
        )
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})
