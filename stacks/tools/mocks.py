"""Pulumi mocks that record every registration, and a runner for the program under them.

Used by the tests (tests/infra/conftest.py) and by `python -m stacks.plan`. No CLI, plugins or
credentials: the engine is replaced in-process. Mocked outputs are deterministic (derived from
names; an Image's contextHash from its files, as docker-build computes it), so two runs of the
same configuration and files give identical recordings.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import json
import runpy
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from images.docker_build_model import image_context_hash
from stacks.aws.store_access import rendered
from stacks.config.project_file import project_config
from stacks.shared import releases
from stacks.tools.ec2_descriptions import check_descriptions
from stacks.tools.paths import PROGRAM, PROJECT_FILE

CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
ACCOUNT = "123456789012"
GCP_PROJECT_NUMBER = "210987654321"
AZURE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
AZURE_TENANT = "11111111-1111-1111-1111-111111111111"
AZURE_CLIENT = "22222222-2222-2222-2222-222222222222"


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]  # engine (camelCase) names; secrets stay wrapped (see is_secret)
    custom: bool
    provider: str  # "<provider urn>::<id>" or "" (components, providers)
    parent: str
    protect: bool
    dependencies: tuple[str, ...] = ()  # URNs of explicit `depends_on` (and input dependencies)
    # An input's name -> the URNs its value came from (what a policy pack's `property_dependencies` holds).
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()  # those no input carries: what `depends_on` alone adds
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    retain_on_delete: bool = False
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete, as Go durations
    outputs: dict[str, Any] = field(default_factory=dict)  # the state the (mocked) provider returned


@dataclass(frozen=True)
class Invoke:
    token: str  # package:module:function
    args: dict[str, Any]
    provider: str = ""  # the explicit provider's reference; "" for the package's default provider


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """Inputs with secrets removed from their wrappers (for assertions on plain values)."""
    if rpc.is_rpc_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def decode_json(value: Any) -> Any:
    """A JSON document held in a string input (policy, container definitions, provider config), decoded."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def typ_generates(typ: str) -> bool:
    """Types whose `name_prefix` the mocks expand (instance templates keep their own mocked suffix)."""
    return typ != "gcp:compute/instanceTemplate:InstanceTemplate"


@dataclass
class Deployed:
    """What earlier `up`s of one stack left, for a run that stands for its next `up`.

    `outputs`: the stack's outputs, which a StackReference to the stack itself reads (its
    `releases`, stacks/shared/releases.py). `definitions`: each task definition family's registered
    definitions, oldest first: ECS numbers a family's revisions 1, 2, … and every argument of a
    task definition but its tags forces a replacement (terraform-provider-aws
    `resourceTaskDefinitionUpdate` updates tags only), so an unchanged definition keeps its
    revision and a changed one gets the next. `bot_build`: how many times the bot project changed,
    which gives the bot images other digests (the dispatcher image keeps its own)."""

    outputs: dict[str, Any] = field(default_factory=dict)
    definitions: dict[str, list[str]] = field(default_factory=dict)
    bot_build: int = 0
    # The cluster's CustomResourceDefinitions a `.get` reads: name -> the versions it serves. None: every
    # CRD read is there and serves v1beta1 (its storage version) and v1alpha1, as agent-sandbox v0.5's do.
    crds: dict[str, tuple[str, ...]] | None = None
    now: datetime = datetime(2026, 1, 1, tzinfo=UTC)  # the clock of this `up` (a release's `created`)

    def record(self, run: Run) -> None:
        """After a successful `up`: the stack's outputs are what the next one reads back, and
        infra/__main__.py exports exactly the outputs of the cloud's component under the root stack (the
        one whose outputs name the cloud: a k8s stack's images are built beside it, stacks/k8s/stack.py)."""
        self.now += timedelta(hours=1)
        types = {urn: urn.split("::")[-2] for urn in run.completed}
        (self.outputs,) = (dict(outputs) for urn, outputs in run.completed.items()
                           if types[urn].startswith("pulumi:pulumi:Stack$") and types[urn].count("$") == 1
                           and "cloud" in outputs)


@functools.cache
def disabled_default_providers() -> frozenset[str]:
    """The packages whose default provider Pulumi.yaml's `pulumi:disable-default-providers` turns off."""
    config = project_config(PROJECT_FILE)
    return frozenset(config.get("pulumi:disable-default-providers", {}).get("value", ()))


def refuse_default_provider(token: str, provider: str | None) -> None:
    """As the engine refuses it: an invoke of a package whose default provider is disabled must name an
    explicit provider (its own, or through its parent's providers), or the preview fails."""
    package = token.split(":", 1)[0]
    if not provider and package in disabled_default_providers():
        raise RuntimeError(f"Default provider for '{package}' disabled. '{token}' must use an explicit provider.")


class RecordingMocks(pulumi_mocks.Mocks):
    def __init__(self, region: str = "us-east-1", gcp_project: str = "voicefleet-test", generation: int = 1,
                 deployed: Deployed | None = None, preview: bool = False) -> None:
        self.deployed = Deployed() if deployed is None else deployed
        # A preview: what a provider computes at creation (an image's digest, which the build gives) is unknown.
        self.preview = preview
        self.region = region
        self.gcp_project = gcp_project
        # Values a cloud assigns anew each time a resource is created (ids, unique ids): a second
        # generation stands for the same stack re-created after a destroy.
        self.generation = generation
        self.invokes: list[Invoke] = []

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        # Keys must be the engine's camelCase names, or the SDK silently reads None.
        invoked = args.token  # the function's token (package:module:function)
        self.invokes.append(Invoke(invoked, dict(args.args), args.provider or ""))
        refuse_default_provider(invoked, args.provider)
        if invoked == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{z}" for z in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)]}
        if invoked == "aws:index/getCallerIdentity:getCallerIdentity":  # the credentials' account: the stack's
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/mock", "userId": "AIDAMOCK",
                    "id": ACCOUNT}
        if invoked == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "mock-ecr-password", "authorizationToken": "mock",
                    "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com"}
        if invoked == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0debian12mock0000", "imageId": "ami-0debian12mock0000", "name": "debian-12-amd64-mock"}
        if invoked == "gcp:organizations/getProject:getProject":  # the deterministic Cloud Run URL's number
            return {"projectId": self.gcp_project, "number": GCP_PROJECT_NUMBER, "name": self.gcp_project}
        if invoked == "azure-native:authorization:getClientConfig":
            return {"clientId": AZURE_CLIENT, "objectId": AZURE_CLIENT, "subscriptionId": AZURE_SUBSCRIPTION,
                    "tenantId": AZURE_TENANT}
        if invoked == "azure-native:authorization:getClientToken":
            # No token to exchange: the registry login stays offline (stacks/azure/registry_login.py).
            return {"token": ""}
        if invoked == "azure-native:redisenterprise:listDatabaseKeys":
            return {"primaryKey": "mock-redis-primary-key", "secondaryKey": "mock-redis-secondary-key"}
        if invoked == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": "mock-gcp-token", "project": self.gcp_project, "region": self.region}
        return {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        name = inputs.get("name") or args.name
        if not inputs.get("name") and isinstance(inputs.get("namePrefix"), str) and typ_generates(args.typ):
            # The provider's generated tail (terraform's PrefixedUniqueId: 26 characters), new per creation.
            name = inputs["namePrefix"] + _digest(f"{self.generation}:{args.name}")[:26]
        if isinstance(name, dict):  # a secret name: never for our resources, keep it simple
            name = args.name
        state: dict[str, Any] = {**inputs, "name": name}
        typ = args.typ
        check_descriptions(typ, args.name, unwrap(inputs))  # as EC2 refuses one at `pulumi up`
        service = typ.split(":")[1].split("/")[0] if ":" in typ else "x"
        arn = f"arn:aws:{service}:{self.region}:{ACCOUNT}:{typ.rsplit(':', 1)[-1].lower()}/{name}"
        state["arn"] = arn
        rid = f"{args.name}-id"
        if typ == "aws:ecr/repository:Repository":
            state |= {"registryId": ACCOUNT, "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{name}",
                      "arn": f"arn:aws:ecr:{self.region}:{ACCOUNT}:repository/{name}"}
        elif typ == "aws:ecs/taskDefinition:TaskDefinition":
            family = inputs["family"]
            base = f"arn:aws:ecs:{self.region}:{ACCOUNT}:task-definition/{family}"
            revision = self._revision(family, {k: v for k, v in inputs.items() if k not in ("tags", "tagsAll")})
            state |= {"arn": f"{base}:{revision}", "arnWithoutRevision": base, "revision": revision}
        elif typ == "aws:s3/bucket:Bucket":
            # A bucketPrefix gets the provider's 26-character generated tail (PrefixedUniqueId), new per creation.
            tail = _digest(f"{self.generation}:{args.name}")[:26]
            bucket = inputs.get("bucket") or inputs.get("bucketPrefix", "") + tail
            state |= {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
            rid = bucket  # S3's id is the bucket's name
        elif typ == "aws:ecs/cluster:Cluster":
            state["arn"] = f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/{name}"
        elif typ == "aws:ecs/service:Service":
            state["arn"] = f"arn:aws:ecs:{self.region}:{ACCOUNT}:service/{name}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:{name}"
        elif typ == "aws:secretsmanager/secret:Secret":
            state["arn"] = f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{name}-AbCdEf"
        elif typ == "aws:ec2/eip:Eip":
            state |= {"publicIp": "203.0.113.10", "allocationId": f"eipalloc-{_digest(args.name)[:8]}"}
        elif typ == "aws:ec2/networkInterface:NetworkInterface":
            state["privateIp"] = "10.0.0.10"
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{name}-1234567890.{self.region}.elb.amazonaws.com"
            # The ARN's part after `loadbalancer/`, which CloudWatch's `LoadBalancer` dimension names.
            state["arnSuffix"] = f"app/{name}/{_digest(f'{self.generation}:{args.name}')[:16]}"
        elif typ == "aws:lb/targetGroup:TargetGroup":
            # CloudWatch's `TargetGroup` dimension: `targetgroup/<name>/<id>`.
            state["arnSuffix"] = f"targetgroup/{name}/{_digest(f'{self.generation}:{args.name}')[:16]}"
        elif typ == "pulumi:pulumi:StackReference":
            return args.resource_id or name, {"name": inputs.get("name"), "outputs": dict(self.deployed.outputs),
                                              "secretOutputNames": []}
        elif typ == "docker-build:index:Image":
            rebuilt = self.deployed.bot_build and "-bot" in args.name
            digest = "sha256:" + _digest(f"{self.deployed.bot_build}:{args.name}" if rebuilt else args.name)
            tags = inputs.get("tags") or [args.name]
            # docker-build's own context hash, from the real files (images/docker_build_model.py)
            state |= {"contextHash": image_context_hash(unwrap(inputs), PROGRAM.parent),
                      **({} if self.preview else {"digest": digest, "ref": f"{tags[0]}@{digest}"})}
        elif typ.startswith("gcp:"):
            project = inputs.get("project", self.gcp_project)
            state["selfLink"] = f"https://www.googleapis.com/compute/v1/projects/{project}/global/{name}"
            if typ == "gcp:serviceaccount/account:Account":
                email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
                unique = str(int(_digest(f"{self.generation}:{email}")[:16], 16)).rjust(21, "1")[:21]
                state |= {"email": email, "name": f"projects/{project}/serviceAccounts/{email}",
                          "member": f"serviceAccount:{email}", "uniqueId": unique}
            elif typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
                state["name"] = f"projects/{project}/roles/{inputs['roleId']}"
            elif typ == "gcp:cloudrunv2/service:Service":
                state["uri"] = f"https://{name}-abc123-uc.a.run.app"
            elif typ == "gcp:secretmanager/secret:Secret":
                state["name"] = f"projects/{project}/secrets/{inputs['secretId']}"
            elif typ == "gcp:compute/address:Address":
                state["address"] = "203.0.113.20"
            elif typ == "gcp:compute/globalAddress:GlobalAddress":
                state["address"] = "203.0.113.30"
            elif typ == "gcp:secretmanager/secretVersion:SecretVersion":
                state |= {"version": "1", "name": f"{inputs['secret']}/versions/1"}
            elif typ == "gcp:artifactregistry/repository:Repository":
                state["name"] = inputs.get("repositoryId", name)
            elif typ == "gcp:memorystore/instance:Instance":
                # Memorystore lists the instance's own CA only in the per-instance mode, its default
                # when the mode is left out; the shared and customer modes leave the list empty.
                mode = inputs.get("serverCaMode") or "GOOGLE_MANAGED_PER_INSTANCE_CA"
                pem = f"-----BEGIN CERTIFICATE-----\n{_digest(args.name)[:32]}\n-----END CERTIFICATE-----"
                state["managedServerCas"] = ([{"caCerts": [{"certificates": [pem]}]}]
                                             if mode == "GOOGLE_MANAGED_PER_INSTANCE_CA" else [])
            elif typ == "gcp:compute/instanceTemplate:InstanceTemplate":
                # terraform's PrefixedUniqueId: a timestamp and a counter, one per template (several
                # templates, one per release, never share a name)
                counter = int(_digest(args.name)[:8], 16) % 10**10
                state["name"] = f"{inputs.get('namePrefix', args.name)}2026010100000000{counter:010d}"
            rid = state["name"] if typ == "gcp:secretmanager/secret:Secret" else f"projects/{project}/{args.name}"
        elif typ == CRD and args.resource_id:  # a read of the cluster's own CRD (`.get`)
            return args.resource_id, self._crd(args.resource_id)
        elif typ.startswith("tls:"):
            state |= _tls_state(typ, args.name, inputs, self.generation)
        elif typ.startswith("kubernetes:"):
            state["metadata"] = _kubernetes_metadata(args.name, inputs, self.generation)
            rid = "/".join(filter(None, (state["metadata"].get("namespace"), state["metadata"]["name"])))
        elif typ.startswith("azure-native:"):
            rid, extra = _azure_state(typ, args.name, inputs, self.generation)
            state |= extra
        elif typ == "aws:elasticache/user:User" and isinstance(inputs.get("accessString"), str):
            # DescribeUsers returns the engine's rendering of the rules, which the provider keeps.
            state["accessString"] = rendered(inputs["accessString"])
        elif typ == "random:index/randomPassword:RandomPassword":
            state["result"] = _random_password(args.name, inputs, self.generation)
        elif typ == "aws:secretsmanager/secretVersion:SecretVersion":
            # PutSecretValue makes a new version with a new id for a new value: a rotation must show
            # as a new id wherever the version is pinned, as it does at AWS.
            state["versionId"] = "v-" + _digest(f"{args.name}:{json.dumps(unwrap(inputs.get('secretString')))}")[:8]
        return rid, state

    def _crd(self, name: str) -> dict[str, Any]:
        """The CRD as the API server answers a read of it, or its 404 as pulumi-kubernetes reports it."""
        crds = self.deployed.crds
        served = ("v1beta1", "v1alpha1") if crds is None else crds.get(name)
        if served is None:
            raise RuntimeError(f"resource {name!r} does not exist")
        plural, _, group = name.partition(".")
        versions = [{"name": version, "served": True, "storage": index == 0} for index, version in enumerate(served)]
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": name}, "spec": {"group": group, "names": {"plural": plural}, "versions": versions}}

    def _revision(self, family: str, definition: dict[str, Any]) -> int:
        registered = self.deployed.definitions.setdefault(family, [])
        text = json.dumps(definition, sort_keys=True, default=str)
        if not registered or registered[-1] != text:
            registered.append(text)
        return len(registered)


def _tls_state(typ: str, logical: str, inputs: dict[str, Any], generation: int) -> dict[str, Any]:
    """pulumi-tls' outputs: PEM-shaped stand-ins (no real key), each new per creation as the provider's
    are, and the validity window the provider computes from `validity_period_hours`."""
    body = _digest(f"{generation}:{typ}:{logical}")[:48]
    if typ == "tls:index/privateKey:PrivateKey":
        return {"privateKeyPem": f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
                "publicKeyPem": f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n",
                "publicKeyOpenssh": f"ssh-rsa {body}\n"}
    if typ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"}
    hours = int(inputs.get("validityPeriodHours") or 0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {"certPem": f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n",
            "validityStartTime": start.isoformat(), "readyForRenewal": False,
            "validityEndTime": (start + timedelta(hours=hours)).isoformat()}


# pulumi-random's special characters when `special` is on and `override_special` unset.
RANDOM_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def _serialized(state: dict[str, Any]) -> Any:
    """`state` as the engine's wire form, as Pulumi's MockMonitor serializes a mock's state."""
    return pulumi_mocks._sync_await(rpc.serialize_properties(state, {}))  # type: ignore[attr-defined]


def _random_password(logical: str, inputs: dict[str, Any], generation: int) -> str:
    """pulumi-random's RandomPassword `result`: `length` characters from the sets its inputs allow
    (letters and digits, and its special characters unless `special` is false), new per creation and
    per `keepers` (a change of them replaces the resource, so the provider draws a new one)."""
    length = int(inputs["length"])
    seed = f"{generation}:{logical}:{json.dumps(unwrap(inputs.get('keepers') or {}), sort_keys=True)}"
    stream = ""
    while len(stream) < length:
        stream += _digest(f"{seed}:{len(stream)}")
    # Mixed case and digits, as the provider's alphabet; specials in every fourth place when allowed.
    letters = [c.upper() if i % 3 == 0 else c for i, c in enumerate(stream[:length])]
    if inputs.get("special", True) is not False:
        specials = inputs.get("overrideSpecial") or RANDOM_SPECIAL
        letters = [specials[i % len(specials)] if i % 4 == 3 else c for i, c in enumerate(letters)]
    return "".join(letters)


def _kubernetes_metadata(logical: str, inputs: dict[str, Any], generation: int) -> dict[str, Any]:
    """An object's metadata as pulumi-kubernetes leaves it: without a `metadata.name` the provider names
    it `<logical name>-<8 random characters>`, and an auto-named ConfigMap or Secret whose data changes
    is replaced under a new name (here: the tail is a digest of the data, new per creation)."""
    metadata = dict(inputs.get("metadata") or {})
    if not isinstance(metadata.get("name"), str):
        data = json.dumps({key: unwrap(inputs.get(key)) for key in ("data", "stringData")}, sort_keys=True, default=str)
        metadata["name"] = f"{logical}-{_digest(f'{generation}:{logical}:{data}')[:8]}"
    return metadata


# ARM's name input of each azure-native type the stacks create (the resource's last id segment).
_AZURE_NAMES = ("secretName", "databaseName", "virtualNetworkLinkName", "privateDnsZoneGroupName", "resourceGroupName",
                "registryName", "resourceName", "vaultName", "environmentName", "containerAppName", "workspaceName",
                "virtualNetworkName", "networkSecurityGroupName", "publicIpAddressName", "natGatewayName",
                "clusterName",
                "privateEndpointName", "privateZoneName", "ruleName", "roleDefinitionId", "roleAssignmentName",
                "containerGroupName", "name", "containerName", "managementPolicyName", "blobServicesName",
                "accountName")


def _azure_state(typ: str, logical: str, inputs: dict[str, Any], generation: int) -> tuple[str, dict[str, Any]]:
    """An ARM id and the outputs ARM assigns, derived from the inputs (and, for principals, the
    generation: a re-created identity gets a new principal)."""
    kind = typ.split(":")[-1]
    name = next((inputs[key] for key in _AZURE_NAMES if isinstance(inputs.get(key), str)
                 and not (key == "resourceGroupName" and kind != "ResourceGroup")), logical)
    group = inputs.get("resourceGroupName") if isinstance(inputs.get("resourceGroupName"), str) else "rg"
    scope = inputs.get("scope") if isinstance(inputs.get("scope"), str) else f"/subscriptions/{AZURE_SUBSCRIPTION}"
    rid = {"ResourceGroup": f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/{name}",
           "RoleDefinition": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{name}",
           "RoleAssignment": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
           "Secret": f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.KeyVault/"
                     f"vaults/{inputs.get('vaultName')}/secrets/{name}"}.get(
        kind, f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/{group}/providers/{kind}/{name}")
    unique = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{generation}:{rid}"))
    state: dict[str, Any] = {"id": rid, "name": name}
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # ARM answers the identities it was given as a map of id -> principal (the SDK's output type).
        state["identity"] = {**identity,
                             "userAssignedIdentities": {key: {} for key in identity["userAssignedIdentities"]}}
    if kind == "Registry":
        state["loginServer"] = f"{name}.azurecr.io"
    elif kind == "UserAssignedIdentity":
        state |= {"principalId": unique, "clientId": str(uuid.uuid5(uuid.NAMESPACE_DNS, unique)),
                  "tenantId": AZURE_TENANT}
    elif kind == "Vault":
        state["properties"] = {**inputs.get("properties", {}), "vaultUri": f"https://{name}.vault.azure.net/"}
    elif kind == "Secret":
        version = _digest(f"{generation}:{json.dumps(inputs.get('properties', {}), sort_keys=True, default=str)}")[:32]
        base = f"https://{inputs.get('vaultName')}.vault.azure.net/secrets/{name}"
        state["properties"] = {"secretUri": base, "secretUriWithVersion": f"{base}/{version}"}
    elif kind == "ManagedEnvironment":
        state |= {"defaultDomain": f"{_digest(rid)[:12]}.{inputs.get('location', 'westeurope')}.azurecontainerapps.io",
                  "staticIp": "203.0.113.40"}
    elif kind == "RedisEnterprise":
        state["hostName"] = f"{name}.{inputs.get('location', 'westeurope')}.redis.azure.net"
    elif kind == "PublicIPAddress":
        state["ipAddress"] = "203.0.113.50"
    elif kind == "Workspace":
        state["customerId"] = unique
    return rid, state


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.completed: dict[str, dict[str, Any]] = {}  # component URN -> the outputs it registered
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.additionalSecretOutputs:
            # The engine marks these outputs secret (pulumi-random's `result`, pulumi-tls' private key);
            # Pulumi's MockMonitor does not, so a mocked program would see them plain.
            state = rpc.deserialize_properties(response.object)
            for key in set(request.additionalSecretOutputs) & set(state):
                if not rpc.is_rpc_secret(state[key]):
                    state[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": state[key]}
            response.object.CopyFrom(_serialized(state))
        if request.type != "pulumi:pulumi:Stack":
            record = Registration(
                urn=response.urn, type=request.type, name=request.name,
                inputs=rpc.deserialize_properties(request.object), custom=bool(request.custom),
                provider=request.provider, parent=request.parent, protect=bool(request.protect),
                dependencies=tuple(sorted(request.dependencies)),
                property_dependencies={key: tuple(sorted(urns.urns))
                                       for key, urns in request.propertyDependencies.items()},
                depends_on=tuple(sorted(set(request.dependencies) - {
                    urn for urns in request.propertyDependencies.values() for urn in urns.urns})),
                ignore_changes=tuple(request.ignoreChanges), delete_before_replace=bool(request.deleteBeforeReplace),
                retain_on_delete=bool(request.retainOnDelete), outputs=rpc.deserialize_properties(response.object),
                custom_timeouts={key: getattr(request.customTimeouts, key) for key in ("create", "update", "delete")
                                 if request.HasField("customTimeouts") and getattr(request.customTimeouts, key)},
            )
            with self._lock:
                self.registrations.append(record)
        return response


    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        """A component's `register_outputs`: the engine marks it complete and keeps its outputs."""
        with self._lock:
            self.completed[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


@dataclass
class Run:
    registrations: list[Registration]
    invokes: list[Invoke] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)  # component URN -> registered outputs

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {typ} {name or ''}, found {[r.name for r in found]}")
        return found[0]


def run_program(config: Mapping[str, str], secret_keys: list[str], *, stack: str,
                project: str = "voicefleet", generation: int = 1, deployed: Deployed | None = None,
                preview: bool = False) -> Run:
    """Run __main__.py once under fresh mocks, in its own context and event loop; `deployed`: what
    the stack's earlier `up`s left (a first `up` without it); `preview`: as `pulumi preview` runs it (the
    built images' digests unknown)."""
    region = config.get("aws:region") or config.get("gcp:region") or "us-east-1"
    mocks = RecordingMocks(region=region, gcp_project=config.get("gcp:project", "voicefleet-test"),
                           generation=generation, deployed=deployed, preview=preview)

    def program() -> None:
        # The program reads VOICEFLEET_SOURCE_REVISION only when config lacks it; runs
        # here pass sourceRevision explicitly, so the machine's environment never leaks in.
        runpy.run_path(str(PROGRAM), run_name="__main__")

    return run_function(program, mocks, config=config, secret_keys=secret_keys, stack=stack, project=project)


def run_function(program: Callable[[], None], mocks: RecordingMocks, *, config: Mapping[str, str] | None = None,
                 secret_keys: Sequence[str] = (), stack: str = "test", project: str = "voicefleet") -> Run:
    """Run `program` (the whole program, or one component built on its own) once under `mocks`,
    in its own context and event loop."""
    monitor = RecordingMonitor(mocks)

    def _run() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys))
            pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=mocks.preview, monitor=monitor)
            from pulumi.runtime.stack import run_pulumi_func

            loop.run_until_complete(run_pulumi_func(program))
            return {}
        finally:
            # A program that failed part-way (a check raising in an apply) leaves tasks pending on this
            # loop: cancelled and finished here, as asyncio.run does. Left to the garbage collector, their
            # destruction ran in the middle of a later run's `ast.parse` and CPython 3.11 refused it
            # ("AST constructor recursion depth mismatch").
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=30))
            # The same tasks also sit in Pulumi's module-wide set of outputs, which the next run would wait on.
            from pulumi.runtime.settings import SETTINGS

            with SETTINGS.lock:
                SETTINGS.outputs.clear()
            loop.close()
            asyncio.set_event_loop(None)

    # A fresh context: Pulumi keeps its settings, root stack and config in context variables.
    wall_clock, releases.clock = releases.clock, lambda: mocks.deployed.now
    try:
        outputs = contextvars.Context().run(_run)
    finally:
        releases.clock = wall_clock
    return Run(registrations=list(monitor.registrations), invokes=list(mocks.invokes), outputs=outputs,
               completed=dict(monitor.completed))
