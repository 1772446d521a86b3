"""TurnRelay (Azure): coturn on one small Debian VM with a static public address, in its own subnet.

Ingress is exactly TURN: UDP and TCP 3478, TLS 443 with a certificate, and the UDP relay range, from
the internet; everything else inbound is denied (no SSH: Azure still requires a key on a Linux VM,
`turnSshPublicKey`, usable only through the serial console). Egress: UDP to the internet (relayed
media), TCP 443 to the private endpoints' subnet only (Key Vault; the metadata service's address is
one Azure does not filter with these rules, as before) and TCP 80 to the internet for apt: the boot
script installs coturn from Debian's mirror, which the image names over http (apt checks every
package against Debian's signed Release files; switching the image's sources to https would rest on
an unchecked image's CA bundle and mirror names, and keep one TCP port open to the internet all the
same). Nothing else. The relay's own user-assigned identity may read the relay's Key Vault secrets
and nothing else, granted before the VM exists (it reads them once at boot, through the instance
metadata service's token for that identity), pinned to the versions this stack wrote. Azure does not
change `customData` on an existing VM, so a changed boot script (a rotated secret) must replace it,
like the other clouds' relays; that azure-native replaces it rather than failing the update is not
tried."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_azure_native.compute as azure_compute
import pulumi_azure_native.managedidentity as azure_managedidentity
import pulumi_azure_native.network as azure_network

from stacks.azure.secrets import SecretStore
from stacks.azure.vault_read import vault_read
from stacks.config.turn import TurnSettings
from stacks.shared import turn_server

TURN_ROLE = "turn"  # tag `role`; the policy pack reads the boot script of the VM carrying it
ADMIN = "voicefleet"
DEBIAN = {"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}
IMDS = "http://169.254.169.254/metadata"
_PRIVATE_IP = (f"curl -sf -H Metadata:true '{IMDS}/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress"
               "?api-version=2021-02-01&format=text'")


def fetch_function(uris: dict[str, str], client_id: str) -> str:
    """`fetch NAME`: the secret's pinned version from Key Vault, with the relay identity's token."""
    cases = "\n".join(f"    {name}) uri='{uri}';;" for name, uri in uris.items())
    return f"""fetch() {{
  local uri token
  case "$1" in
{cases}
  esac
  # A new role assignment can take minutes to apply: Key Vault's 403 is retried for up to 5 minutes.
  token=$(curl -sf --retry 5 --retry-connrefused -H Metadata:true \\
    '{IMDS}/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net'\\
'&client_id={client_id}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  {vault_read("--retry 20 --retry-all-errors --retry-delay 15")}
}}"""


def security_rules(turn: TurnSettings, vault_prefix: str) -> list[dict[str, Any]]:
    """`vault_prefix`: the private endpoints' subnet, where Key Vault answers the boot script."""
    low, high = turn.relay_ports

    def rule(name: str, priority: int, direction: str, access: str, protocol: str, ports: str,
             destination: str = "*") -> dict[str, Any]:
        return {"name": name, "priority": priority, "direction": direction, "access": access, "protocol": protocol,
                "source_address_prefix": "Internet" if direction == "Inbound" and access == "Allow" else "*",
                "source_port_range": "*", "destination_address_prefix": destination, "destination_port_range": ports}

    inbound = [rule("turn-udp", 100, "Inbound", "Allow", "Udp", str(turn_server.LISTEN_PORT)),
               rule("turn-tcp", 110, "Inbound", "Allow", "Tcp", str(turn_server.LISTEN_PORT)),
               rule("relay", 120, "Inbound", "Allow", "Udp", f"{low}-{high}")]
    if turn.tls:
        inbound.append(rule("turns", 130, "Inbound", "Allow", "Tcp", str(turn_server.TLS_PORT)))
    return [*inbound, rule("deny-other-in", 4000, "Inbound", "Deny", "*", "*"),
            rule("udp-out", 100, "Outbound", "Allow", "Udp", "*", "Internet"),
            rule("vault-out", 110, "Outbound", "Allow", "Tcp", "443", vault_prefix),
            rule("apt-out", 120, "Outbound", "Allow", "Tcp", "80", "Internet"),
            rule("deny-other-out", 4000, "Outbound", "Deny", "*", "*")]


@dataclass(frozen=True)
class TurnRelayArgs:
    turn: TurnSettings
    resource_group: pulumi.Input[str]
    location: str
    subnet_id: pulumi.Input[str]
    secrets: SecretStore
    secret_names: Sequence[str]  # TURN_SHARED_SECRET, then TURN_TLS_CERTIFICATE, TURN_TLS_PRIVATE_KEY
    vault_prefix: str  # the subnet of Key Vault's private endpoint (CIDR)
    identity_name: str
    tags: dict[str, str]


class TurnRelay(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    urls: pulumi.Output[list[str]]

    def __init__(self, name: str, args: TurnRelayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:TurnRelay", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        turn = args.turn
        assert turn.ssh_public_key is not None  # stacks/config/azure.py requires it
        tags = {**args.tags, "role": TURN_ROLE}
        common: dict[str, Any] = {"resource_group_name": args.resource_group, "location": args.location,
                                  "tags": tags}
        group = azure_network.NetworkSecurityGroup(
            name, security_rules=cast(Any, security_rules(turn, args.vault_prefix)), **common, opts=child)
        address = azure_network.PublicIPAddress(name, sku={"name": "Standard"}, public_ip_allocation_method="Static",
                                                **common, opts=child)
        nic = azure_network.NetworkInterface(
            name, network_security_group={"id": group.id},
            ip_configurations=[{"name": "primary", "subnet": {"id": args.subnet_id},
                                "public_ip_address": {"id": address.id}, "primary": True}],
            **common, opts=child)
        identity = azure_managedidentity.UserAssignedIdentity(name, resource_name_=args.identity_name, **common,
                                                              opts=child)
        # The boot script reads the secrets once: the VM is created only after its identity may read them
        # and the vault's private name resolves in the network.
        self.grants = args.secrets.grant_access("turn", identity.principal_id, args.secret_names)
        uris = [args.secrets.uris[env] for env in args.secret_names]

        def script(values: list[Any]) -> str:
            public_ip, client_id, found = values[0], values[1], values[2:]
            fetch = fetch_function(dict(zip(args.secret_names, found, strict=True)), client_id)
            text = turn_server.boot_script(turn, public_ip=public_ip, private_ip_command=_PRIVATE_IP,
                                           fetch_function=fetch, secrets=list(args.secret_names),
                                           packages=["python3"])
            return base64.b64encode(text.encode()).decode()

        profiles: dict[str, Any] = {
            "hardware_profile": {"vm_size": turn.vm_size},
            "identity": {"type": "UserAssigned", "user_assigned_identities": [identity.id]},
            "network_profile": {"network_interfaces": [{"id": nic.id, "primary": True}]},
            "os_profile": {
                "computer_name": "turn",
                "admin_username": ADMIN,
                "custom_data": pulumi.Output.all(address.ip_address, identity.client_id, *uris).apply(script),
                "linux_configuration": {"disable_password_authentication": True, "ssh": {"public_keys": [{
                    "path": f"/home/{ADMIN}/.ssh/authorized_keys", "key_data": turn.ssh_public_key}]}},
            },
            "storage_profile": {"image_reference": DEBIAN,
                                "os_disk": {"create_option": "FromImage", "delete_option": "Delete",
                                            "managed_disk": {"storage_account_type": "StandardSSD_LRS"}}},
        }
        # customData cannot change on a VM (ARM: PropertyChangeNotAllowed) and holds the secrets' versions:
        # a rotation replaces the VM, deleting first (its NIC, with the static address, takes one VM).
        vm = azure_compute.VirtualMachine(name, **profiles, **common, opts=pulumi.ResourceOptions(
            parent=self, depends_on=[*self.grants, *args.secrets.ready], replace_on_changes=["osProfile.customData"],
            delete_before_replace=True))
        self.vm_id = vm.id
        self.public_ip = address.ip_address.apply(lambda ip: ip or "")
        host = turn.domain or None
        self.urls = self.public_ip.apply(lambda ip: turn_server.urls(turn, host or ip))
        self.register_outputs({"public_ip": self.public_ip, "urls": self.urls})
