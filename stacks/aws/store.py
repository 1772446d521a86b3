"""CoordinationStore (AWS): ElastiCache Serverless for Valkey, which several dispatcher replicas share.

Private: its endpoint lives in the stack's VPC subnets behind its own security group, which lets
in the dispatcher's tasks on Valkey's ports and nothing else (bots cannot reach it either way:
their egress is UDP and TCP 443). Encrypted in transit (Serverless speaks TLS only) and at rest.
Authenticated: an RBAC user group with one user, `voicefleet`, whose password is the stack's
secret `storePassword` (it reaches the dispatcher from Secrets Manager, by ARN), allowed only the
commands the dispatcher sends, on its keys and channels (`{voicefleet}:*`; stacks/shared/store_access.py);
the `default` user every user group must hold is switched off, with a password no client is given
(a VALKEY user group takes only users that sign in by password or IAM). The user may hold two passwords: the
stack's and, while a rotation deploys, the one it replaces (docs/pulumi.md). Usage limits bound the
bill: its data (`storeDataGb`, 1 GB by default: the plan's store ceiling says what a day of starts
needs, stacks/config/store_ceiling.py), and ECPUs for every session to be a phone call relayed through
the store (stacks/config/store_capacity.py).

The rules that let the dispatcher in are made by `allow_from`, after the dispatcher exists: the
dispatcher's task definition needs the store's endpoint first (docs/replicas.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws.ec2 as aws_ec2
import pulumi_aws.elasticache as aws_elasticache
import pulumi_aws.vpc as aws_vpc

from stacks.aws.store_access import checked as checked_access
from stacks.shared.store_access import ACCESS, USER

ENGINE = "valkey"
MAJOR_VERSION = "8"
PORTS = (6379, 6380)  # the endpoint and the reader endpoint (ElastiCache Serverless)
# ElastiCache names (cache, user id, user group id): 1-40 characters, letters, digits and hyphens,
# starting with a letter, no two hyphens in a row, not ending with one.
NAME = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{0,39}(?<!-)$")


# No channel either: a serverless cache would start it with every channel (and return `&*`).
DEFAULT_ACCESS = "off resetchannels -@all"
_DEFAULT_LABEL = b"voicefleet: the store's default user, switched off"


def valid_name(name: str) -> bool:
    return NAME.match(name) is not None


def default_password(password: str) -> str:
    """The switched-off `default` user's password: derived from the stack's secret so that it is
    stable from one `up` to the next (no diff) without a secret of its own, and handed to no
    client. 64 hex characters, within ElastiCache's 16-128."""
    return hmac.new(password.encode(), _DEFAULT_LABEL, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CoordinationStoreArgs:
    name: str  # the cache's name; also names the user group
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # two or more zones: the endpoint is in each
    password: pulumi.Input[str]  # secret
    protect: bool
    ecpu_per_second: int  # the usage limit (stacks/config/store_capacity.py)
    data_gb: int = 1  # the data storage limit (storeDataGb, stacks/config/store_ceiling.py)
    # secret: the password `password` replaces, accepted as well until the rotation's second `up`
    previous_password: pulumi.Input[str] | None = None


class CoordinationStore(pulumi.ComponentResource):
    url: pulumi.Output[str]  # rediss://voicefleet@<endpoint>:6379/0: no secret in it
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CoordinationStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:CoordinationStore", name, None, opts)
        default_id, user_id = f"{args.name}-off", f"{args.name}-app"
        for checked in (args.name, default_id, user_id):
            if not valid_name(checked):
                raise ValueError(f"store name {checked!r}: 1-40 lowercase letters, digits or single hyphens, "
                                 "starting with a letter")
        child = pulumi.ResourceOptions(parent=self)
        self._name = name
        self.cache_name, self.data_gb = args.name, args.data_gb  # what the store-full alarm watches
        group = aws_ec2.SecurityGroup(name, vpc_id=args.vpc_id, description="voicefleet store: dispatcher only",
                                      tags={"Name": name, "role": "store"}, opts=child)
        self.security_group_id = group.id
        # Every user group holds a user named `default`; this one can do nothing. A VALKEY group takes
        # only password or IAM users (ElastiCache's RBAC page), so it has a password, which no
        # client is given: `off` refuses every sign-in as it whatever the password.
        derived: pulumi.Output[str] = pulumi.Output.from_input(args.password).apply(default_password)
        off_password: pulumi.Output[str] = pulumi.Output.secret(derived)
        default = aws_elasticache.User(f"{name}-default", user_id=default_id, user_name="default",
                                       engine=ENGINE, access_string=checked_access(DEFAULT_ACCESS),
                                       authentication_mode={"type": "password", "passwords": [off_password]},
                                       opts=child)
        # ElastiCache takes at most two passwords: the new one, and the old one old tasks still use.
        passwords = [args.password] if args.previous_password is None else [args.password, args.previous_password]
        user = aws_elasticache.User(f"{name}-user", user_id=user_id, user_name=USER, engine=ENGINE,
                                    access_string=checked_access(ACCESS),
                                    authentication_mode={"type": "password", "passwords": passwords},
                                    opts=child)
        users = aws_elasticache.UserGroup(name, user_group_id=args.name, engine=ENGINE,
                                          user_ids=[default.user_id, user.user_id], opts=child)
        cache = aws_elasticache.ServerlessCache(
            name,
            name=args.name,
            engine=ENGINE,
            major_engine_version=MAJOR_VERSION,
            description="voicefleet dispatcher replicas' coordination store",
            subnet_ids=args.subnet_ids,
            security_group_ids=[group.id],
            user_group_id=users.user_group_id,
            cache_usage_limits={"data_storage": {"maximum": args.data_gb, "unit": "GB"},
                                "ecpu_per_seconds": [{"maximum": args.ecpu_per_second}]},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        endpoint = cache.endpoints.apply(lambda found: found[0] if found else None)
        self.url = pulumi.Output.concat(
            "rediss://", USER, "@", endpoint.apply(lambda e: e.address if e else ""), ":",
            endpoint.apply(lambda e: str(e.port) if e and e.port else str(PORTS[0])), "/0")
        self.register_outputs({"url": self.url, "security_group_id": self.security_group_id})

    def allow_from(self, dispatcher_security_group_id: pulumi.Input[str]) -> None:
        """Lets the dispatcher's tasks (and nothing else) reach the store on its ports."""
        child = pulumi.ResourceOptions(parent=self)
        low, high = PORTS
        aws_vpc.SecurityGroupIngressRule(f"{self._name}-in-dispatcher", security_group_id=self.security_group_id,
                                         ip_protocol="tcp", from_port=low, to_port=high,
                                         referenced_security_group_id=dispatcher_security_group_id,
                                         description="store: the dispatcher tasks", opts=child)
        aws_vpc.SecurityGroupEgressRule(f"{self._name}-out-dispatcher", security_group_id=dispatcher_security_group_id,
                                        ip_protocol="tcp", from_port=low, to_port=high,
                                        referenced_security_group_id=self.security_group_id,
                                        description="dispatcher: its coordination store", opts=child)
