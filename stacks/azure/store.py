"""CoordinationStore (Azure): Azure Managed Redis for several dispatcher replicas (docs/replicas.md).

Why Azure Managed Redis and not Azure Cache for Redis: Microsoft retires every Azure Cache for Redis
tier (Basic/Standard/Premium by 30 September 2028, Enterprise by 31 March 2027) and stops creating
new Basic/Standard/Premium caches from 1 October 2026, so a new stack could not make one.

- TLS only: the database speaks `Encrypted` (no plain-text protocol or port exists), TLS 1.2 at least.
- Reached through a private endpoint in the stack's `store` subnet, public network access off; the
  private DNS zone `privatelink.redis.azure.net` makes the cache's own name resolve there, so TLS
  checks the name the certificate carries.
- One shard, no clustering (`NoCluster`): the dispatcher's scripts touch several keys at once, which
  a sharded database would refuse across slots. Such a database is 25 GB at most (storeSku's choices).
- Without high availability (not prod) a size change loses all the data: each `up` exports its size
  (`storeSku`) and the next one warns when it changes it (scale_warning).

What it cannot do that the AWS store does: Azure Managed Redis assigns Entra ID identities only its
built-in `default` access policy (full access); custom access policies with a command allow-list
(stacks/shared/store_access.py) exist on Azure Cache for Redis only. And the dispatcher signs in with a
password or Google's IAM token (dispatcher/store/client.py), not an Entra token. So the dispatcher
signs in with the database's primary access key as `REDIS_PASSWORD`, which the stack reads from
Azure (`listKeys`, kept secret in the state) and writes to Key Vault: no command allow-list, and
regenerating the key (`az redisenterprise database regenerate-key`) needs an `up` after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.redisenterprise as azure_redisenterprise

from stacks.azure.private_link import PrivateLinkArgs, private_link
from stacks.config.store_ceiling import SKU_GB, SKU_KEY
from stacks.shared.releases import own_stack

PORT = 10000  # Azure Managed Redis' database port (the only one)
PRIVATE_ZONE = "privatelink.redis.azure.net"
GROUP_ID = "redisEnterprise"
OUTPUT = SKU_KEY  # the size this `up` made: the next one reads it back
SCALE_PAGE = "learn.microsoft.com/azure/redis/how-to-scale"


@dataclass(frozen=True)
class CoordinationStoreArgs:
    cluster_name: str
    resource_group: pulumi.Input[str]
    location: str
    vnet_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    sku: str
    high_availability: bool
    protect: bool
    tags: dict[str, str]


class CoordinationStore(pulumi.ComponentResource):
    url: pulumi.Output[str]
    password: pulumi.Output[str]

    def __init__(self, name: str, args: CoordinationStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:CoordinationStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = azure_redisenterprise.RedisEnterprise(
            name,
            cluster_name=args.cluster_name,
            resource_group_name=args.resource_group,
            location=args.location,
            sku={"name": args.sku},
            minimum_tls_version="1.2",
            high_availability="Enabled" if args.high_availability else "Disabled",
            public_network_access="Disabled",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        database = azure_redisenterprise.Database(
            name,
            cluster_name=cluster.name,
            resource_group_name=args.resource_group,
            database_name="default",
            client_protocol="Encrypted",
            clustering_policy="NoCluster",
            eviction_policy="NoEviction",
            access_keys_authentication="Enabled",
            port=PORT,
            opts=child,
        )
        reachable = private_link(name, PrivateLinkArgs(
            resource_group=args.resource_group, location=args.location, vnet_id=args.vnet_id,
            subnet_id=args.subnet_id, target_id=cluster.id, group_id=GROUP_ID, zone=PRIVATE_ZONE,
            connection="store", record="redis", tags=args.tags), parent=self)
        keys = azure_redisenterprise.list_database_keys_output(
            cluster_name=cluster.name, database_name=database.name, resource_group_name=args.resource_group,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[database]))
        self.cluster_id = cluster.id
        self.password = pulumi.Output.secret(keys.primary_key)
        self.url = pulumi.Output.concat("rediss://", cluster.host_name, f":{PORT}")
        # The zone's link too: before it, the network resolves the cache to its disabled public endpoint.
        self.ready: list[pulumi.Resource] = [database, *reachable]
        self.sku = args.sku
        warned = {} if args.high_availability else {"scaleWarning": self._warn_of_a_scale(name, args.sku)}
        self.register_outputs({"url": self.url, **warned})

    def _warn_of_a_scale(self, name: str, sku: str) -> pulumi.Output[str]:
        """Warns (the preview, the `up` and the plan) when this `up` changes the size the last one made: a
        preview shows an update in place, but without high availability the scale loses every key."""
        last = pulumi.StackReference(f"{name}-last-up", stack_name=own_stack(),
                                     opts=pulumi.ResourceOptions(parent=self)).get_output(OUTPUT)

        def say(value: object) -> str:
            warning = scale_warning(value, sku)
            if warning:
                pulumi.log.warn(warning)
            return warning

        return last.apply(say)


def scale_warning(last: object, now: str) -> str:
    """What a size change does to a store without high availability; "" when the size stays (or the last `up`,
    a first one or one of an earlier release, did not say). Azure's how-to-scale: "If high availability mode
    is disabled, all data is lost and the cache is unavailable during the scaling operation"."""
    if not isinstance(last, str) or last not in SKU_GB or SKU_GB[last] == SKU_GB.get(now):
        return ""
    return (f"{SKU_KEY} {last} -> {now} scales this stack's Azure Managed Redis, which runs without high "
            f"availability (environment is not prod): Azure loses all the store's data and takes it offline "
            f"while it scales ({SCALE_PAGE}), though the preview shows it changed in place. Every live session's "
            f"lease, index entry and timeline goes with it: make the change in a quiet hour with no calls "
            f"running, or keep `pulumi config set {SKU_KEY} {last}` (docs/operations.md, \"The store's ceiling\")")
