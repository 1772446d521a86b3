"""CoordinationStore (GCP): Memorystore for Valkey, which several dispatcher replicas share.

Private: reachable only inside the dispatcher's egress network (stacks/gcp/egress_network.py),
through a Private Service Connect endpoint that Memorystore creates there (a service connection
policy for `gcp-memorystore` allows it in that subnetwork); the Cloud Run dispatcher reaches it with
Direct VPC egress. Encrypted in
transit (`SERVER_AUTHENTICATION`: TLS, the dispatcher checks the instance's own CA, passed to it
as `REDIS_CA_CERT`). Authenticated with IAM (`IAM_AUTH`): only the dispatcher's service account
holds `roles/memorystore.dbConnectionUser`, bound to the project with no instance condition (the
grant's comment says why), and the dispatcher signs in with its own short-lived access token
(`REDIS_AUTH=gcp-iam`); bots have neither the role nor TCP egress other than 443.
One shard, cluster mode off (one endpoint, plain clients); a replica in another zone when
`replicas` is 1 (prod), none in dev. `noeviction`: a full store refuses writes rather than drop the
records that stop double launches (MAXMEMORY_POLICY says why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp.memorystore as gcp_memorystore
import pulumi_gcp.networkconnectivity as gcp_networkconnectivity
import pulumi_gcp.projects as gcp_projects

SERVICE_CLASS = "gcp-memorystore"
CONNECTOR_ROLE = "roles/memorystore.dbConnectionUser"
# Memorystore instance ids: 4-63 characters, lowercase letters, digits and hyphens, starting with a
# letter or digit, not ending with a hyphen (the provider's own rule).
INSTANCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$")
NODE_TYPES = ("SHARED_CORE_NANO", "STANDARD_SMALL", "HIGHMEM_MEDIUM", "HIGHMEM_XLARGE")
SERVER_CA_MODE = "GOOGLE_MANAGED_PER_INSTANCE_CA"
# Memorystore for Valkey's default policy is volatile-lru (cloud.google.com/memorystore/docs/valkey/
# supported-instance-configurations): full, it would evict keys with a TTL, and every record the dispatcher
# keeps has one: leases, cell records, once-marks, timelines, the records that stop a double launch.
# `noeviction` refuses the write instead, which the dispatcher answers as a failed start. The provider
# updates engineConfigs in place (PATCH with an update mask, not immutable: magic-modules
# mmv1/products/memorystore/Instance.yaml), so an existing instance takes it on its next `up`.
MAXMEMORY_POLICY = {"maxmemory-policy": "noeviction"}


def valid_instance_id(name: str) -> bool:
    return INSTANCE_ID.match(name) is not None


@dataclass(frozen=True)
class CoordinationStoreArgs:
    instance_id: str
    region: str
    project: str
    network_id: pulumi.Input[str]
    subnetwork_id: pulumi.Input[str]
    dispatcher_member: pulumi.Input[str]  # "serviceAccount:<email>"
    node_type: str  # SHARED_CORE_NANO in dev (no SLA), STANDARD_SMALL in prod
    replicas: int  # per shard: 1 keeps a copy in another zone
    protect: bool
    # The APIs it is created through (stacks/gcp/apis.py STORE_APIS): each of its resources waits for
    # them itself, since a component's `depends_on` does not hold back its children's creation.
    depends_on: tuple[pulumi.Resource, ...] = ()


class CoordinationStore(pulumi.ComponentResource):
    url: pulumi.Output[str]  # rediss://<endpoint>:6379/0
    ca_certificate: pulumi.Output[str]  # the instance's server CA (PEM): not a secret
    grant: gcp_projects.IAMMember  # the dispatcher's connection role

    def __init__(self, name: str, args: CoordinationStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:CoordinationStore", name, None, opts)
        if not valid_instance_id(args.instance_id):
            raise ValueError(f"store instance id {args.instance_id!r}: 4-63 lowercase letters, digits or hyphens")
        if args.node_type not in NODE_TYPES:
            raise ValueError(f"store node type {args.node_type!r}: one of {', '.join(NODE_TYPES)}")
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        policy = gcp_networkconnectivity.ServiceConnectionPolicy(
            name, name=f"{args.instance_id}-psc", location=args.region, project=args.project,
            service_class=SERVICE_CLASS, network=args.network_id,
            psc_config={"subnetworks": [args.subnetwork_id]},
            description="voicefleet: Memorystore endpoints in the dispatcher's egress subnetwork",
            # Its name is fixed and its network immutable: a replacement (a network move) created
            # before the old one is deleted would collide with it by name.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)))
        instance = gcp_memorystore.Instance(
            name,
            instance_id=args.instance_id,
            location=args.region,
            project=args.project,
            mode="CLUSTER_DISABLED",
            shard_count=1,
            replica_count=args.replicas,
            node_type=args.node_type,
            engine_configs=MAXMEMORY_POLICY,
            authorization_mode="IAM_AUTH",
            transit_encryption_mode="SERVER_AUTHENTICATION",
            # The CA `_ca_pem` reads: only this mode fills `managed_server_cas` with the CA that
            # signs the instance (the shared and customer modes leave it empty). Pinned rather than
            # left to the API's default, which may change; a no-op on an instance created in it.
            server_ca_mode=SERVER_CA_MODE,
            desired_auto_created_endpoints=[{"network": args.network_id, "project_id": args.project}],
            deletion_protection_enabled=args.protect,
            labels={"voicefleet": "store"},
            # Its id is fixed and its endpoints' network immutable (a network move replaces it):
            # created before the old one is deleted, the replacement would collide with it by id.
            # Deleted first, the instance goes before the policy it depends on and comes back after
            # it (docs/pulumi.md, moving an existing gcp-prod's store).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, policy], protect=args.protect,
                                        delete_before_replace=True),
        )
        # The dispatcher's service waits for it: a revision that cannot sign in would start degraded.
        # Bound to the project, with no IAM condition: Google's page that "About IAM authentication"
        # sends the reader to for restricting a binding to "a particular instance" (Manage IAM
        # authentication, cloud.google.com/memorystore/docs/valkey/manage-iam-auth) grants the role
        # the one way ("By default, granting a principal the roles/memorystore.dbConnectionUser role
        # allows the principal to access all instances in your project") and, under "Create a limited
        # IAM admin role for an instance", only limits who may grant it (an IAM condition on the
        # roles an admin may grant, not on the instances the role reaches). No per-instance policy
        # exists to bind to either: pulumi-gcp 10.2 has no Memorystore IAM resource (a test fails the
        # day it has one). And a condition on `resource.name` narrows a binding only for the services
        # on Google's "Resource attributes for IAM Conditions" list
        # (cloud.google.com/iam/docs/conditions-resource-attributes: "Other services and resource
        # types do not recognize resource attributes"), which does not name Memorystore: one the
        # service does not evaluate may never match, and every replica would be refused at AUTH.
        # What stays open: every IAM_AUTH Memorystore instance in the stack's project (docs/pulumi.md:
        # a project of its own).
        self.grant = gcp_projects.IAMMember(f"{name}-dispatcher", project=args.project, role=CONNECTOR_ROLE,
                                            member=args.dispatcher_member, opts=child)
        endpoint = instance.endpoints.apply(_first_address)
        self.url = pulumi.Output.concat("rediss://", endpoint, ":6379/0")
        self.ca_certificate = instance.managed_server_cas.apply(_ca_pem)
        self.register_outputs({"url": self.url})


def _first_address(endpoints: object) -> str:
    """The instance's primary endpoint's address (Memorystore's nested endpoint structure)."""
    for endpoint in _items(endpoints):
        for connection in _items(_get(endpoint, "connections")):
            auto = _get(connection, "psc_auto_connection")
            for found in auto if isinstance(auto, list) else [auto]:
                if found is not None and _get(found, "connection_type") in (None, "CONNECTION_TYPE_PRIMARY"):
                    address = _get(found, "ip_address")
                    if address:
                        return str(address)
    return ""


def _ca_pem(cas: object) -> str:
    """The instance's server CA, as `REDIS_CA_CERT`. With none, the `up` stops here: an empty
    `REDIS_CA_CERT` gives the dispatcher no trust anchor for the store's private CA, so every
    replica would start with its store unreachable."""
    pems = [str(cert) for ca in _items(cas) for chain in _items(_get(ca, "ca_certs"))
            for cert in _items(_get(chain, "certificates"))]
    if not pems:
        raise ValueError(f"the Memorystore instance lists no server CA (managed_server_cas is empty): the "
                         f"dispatcher could not check its TLS. The stack creates it with server_ca_mode "
                         f"{SERVER_CA_MODE}; an instance in another mode (imported, or made by hand) must be "
                         f"re-created in that one")
    return "\n".join(pems)


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _get(value: object, key: str) -> object:
    if isinstance(value, dict):  # the SDK's output types are dicts keyed snake_case; raw state is camelCase
        if key in value:
            return value[key]
        return value.get(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key))
    return getattr(value, key, None)
