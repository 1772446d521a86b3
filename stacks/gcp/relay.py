"""TurnRelay (GCP): coturn on one small Debian VM with a static external address.

Firewall: ingress to the `voicefleet-turn` tag is exactly TURN (UDP and TCP 3478, TLS 443 with a
certificate, the UDP relay range) from anywhere; nothing else, no SSH. The VM's own service
account may read the relay's secrets (pinned versions) and write logs, nothing more; it reads the
secrets at boot with its metadata-server token (stacks/shared/turn_server.py writes the config).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as gcp_compute
import pulumi_gcp.projects as gcp_projects
import pulumi_gcp.serviceaccount as gcp_serviceaccount

from stacks.config.turn import TurnSettings
from stacks.gcp.secrets import SecretStore
from stacks.gcp.startup import fetch_function
from stacks.shared import turn_server

TURN_TAG = "voicefleet-turn"
DEBIAN_IMAGE = "debian-cloud/debian-12"
_PRIVATE_IP = ("curl -sf -H 'Metadata-Flavor: Google' "
               "http://metadata.google.internal/computeMetadata/v1/instance/network-interfaces/0/ip")


@dataclass(frozen=True)
class TurnRelayArgs:
    turn: TurnSettings
    project: str
    region: str
    zone: str
    account_id: str
    network_id: pulumi.Input[str]
    subnetwork_id: pulumi.Input[str]
    secrets: SecretStore
    secret_names: Sequence[str]  # TURN_SHARED_SECRET, then TURN_TLS_CERTIFICATE, TURN_TLS_PRIVATE_KEY


class TurnRelay(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    urls: pulumi.Output[list[str]]

    def __init__(self, name: str, args: TurnRelayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:TurnRelay", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        turn = args.turn
        low, high = turn.relay_ports
        rules: list[tuple[str, str, list[str]]] = [
            ("turn-udp", "udp", [str(turn_server.LISTEN_PORT), f"{low}-{high}"]),
            ("turn-tcp", "tcp", [str(turn_server.LISTEN_PORT), *([str(turn_server.TLS_PORT)] if turn.tls else [])]),
        ]
        for rule, protocol, ports in rules:
            gcp_compute.Firewall(f"{name}-{rule}", network=args.network_id, direction="INGRESS", priority=1000,
                                 source_ranges=["0.0.0.0/0"], target_tags=[TURN_TAG],
                                 allows=[{"protocol": protocol, "ports": ports}],
                                 description=f"turn: {rule} from anywhere", opts=child)

        account = gcp_serviceaccount.Account(name, account_id=args.account_id, display_name="voicefleet TURN relay",
                                             opts=child)
        member = pulumi.Output.concat("serviceAccount:", account.email)
        readable = args.secrets.grant_access("turn", member, args.secret_names)
        gcp_projects.IAMMember(f"{name}-logs", project=args.project, role="roles/logging.logWriter", member=member,
                               opts=child)
        address = gcp_compute.Address(name, region=args.region, address_type="EXTERNAL", network_tier="PREMIUM",
                                      description="voicefleet TURN relay", opts=child)
        versions = [args.secrets.versions[env].name for env in args.secret_names]

        def script(values: list[str]) -> str:
            public_ip, refs = values[0], dict(zip(args.secret_names, values[1:], strict=True))
            return turn_server.boot_script(turn, public_ip=public_ip, private_ip_command=_PRIVATE_IP,
                                           fetch_function=fetch_function(refs), secrets=list(args.secret_names))

        gcp_compute.Instance(
            name,
            zone=args.zone,
            machine_type=turn.machine_type,
            boot_disk={"initialize_params": {"image": DEBIAN_IMAGE, "size": 10, "type": "pd-balanced"}},
            network_interfaces=[{"subnetwork": args.subnetwork_id,
                                 "access_configs": [{"nat_ip": address.address, "network_tier": "PREMIUM"}]}],
            service_account={"email": account.email, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
            # The ForceNew form of the boot script: a change (a rotated shared secret, new TLS material
            # or quotas) re-creates the VM, which runs it; metadata['startup-script'] would be
            # updated in place and never reach the running coturn.
            metadata_startup_script=pulumi.Output.all(address.address, *versions).apply(script),
            metadata={"block-project-ssh-keys": "true", "enable-oslogin": "TRUE"},
            tags=[TURN_TAG],
            labels={"role": "turn"},
            shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                      "enable_integrity_monitoring": True},
            allow_stopping_for_update=True,
            # The static address can be attached to one VM only: the old relay goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=readable, delete_before_replace=True),
        )
        host = turn.domain
        self.public_ip = address.address
        self.urls = address.address.apply(lambda ip: turn_server.urls(turn, host or ip))
        self.register_outputs({"public_ip": self.public_ip, "urls": self.urls})
