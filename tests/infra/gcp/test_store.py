"""Memorystore for Valkey, run on its own under the recording mocks and in a stack: private (a Private
Service Connect endpoint in the stack's subnetwork), TLS checked against its own CA, IAM sign-in
for the dispatcher's account only; and the instance-id rule the provider would refuse."""

from __future__ import annotations

import dataclasses

import pulumi
import pytest

from stacks.gcp import store as gcp_store
from stacks.tools.mocks import RecordingMocks, Registration, run_function, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import of_type, run_component

ARGS = gcp_store.CoordinationStoreArgs(
    instance_id="voicefleet-gcp-prod", region="us-central1", project="p", network_id="net", subnetwork_id="subnet",
    dispatcher_member="serviceAccount:dispatcher@p.iam.gserviceaccount.com", node_type="STANDARD_SMALL", replicas=1,
    protect=True)


@pytest.fixture
def gcp() -> list[Registration]:
    def build() -> None:
        store = gcp_store.CoordinationStore("vf-store", ARGS)
        pulumi.export("url", store.url)

    return run_component(build)


def test_gcp_store_is_memorystore_valkey_with_iam_auth_and_tls(gcp: list[Registration]) -> None:
    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    inputs = unwrap(instance.inputs)
    assert (inputs["authorizationMode"], inputs["transitEncryptionMode"]) == ("IAM_AUTH", "SERVER_AUTHENTICATION")
    assert (inputs["mode"], inputs["shardCount"], inputs["replicaCount"]) == ("CLUSTER_DISABLED", 1, 1)
    assert inputs["desiredAutoCreatedEndpoints"] == [{"network": "net", "projectId": "p"}]
    assert inputs["deletionProtectionEnabled"] and instance.protect
    (policy,) = of_type(gcp, "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy")
    policy_inputs = unwrap(policy.inputs)
    assert policy_inputs["serviceClass"] == "gcp-memorystore"
    assert policy_inputs["pscConfig"]["subnetworks"] == ["subnet"]


def test_gcp_store_refuses_writes_when_full_rather_than_evict_the_records_that_stop_double_launches(
        gcp: list[Registration]) -> None:
    """Memorystore for Valkey's default maxmemory-policy is volatile-lru, and every dispatcher record has a TTL:
    full, the instance would drop leases and once-marks silently. The stack pins noeviction, and nothing else
    of the engine's configuration."""
    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    assert unwrap(instance.inputs)["engineConfigs"] == {"maxmemory-policy": "noeviction"}


def test_gcp_store_connection_role_goes_to_the_dispatcher_only(gcp: list[Registration]) -> None:
    members = [unwrap(m.inputs) for m in of_type(gcp, "gcp:projects/iAMMember:IAMMember")]
    assert [{k: v for k, v in m.items() if k != "condition"} for m in members] == [
        {"project": "p", "role": "roles/memorystore.dbConnectionUser",
         "member": "serviceAccount:dispatcher@p.iam.gserviceaccount.com"}]


def test_gcp_store_connection_role_carries_no_condition_memorystore_may_not_evaluate(
        gcp: list[Registration]) -> None:
    """N11: a `resource.name` condition narrows a binding only for the services on Google's resource
    attributes list, and Memorystore is not documented there; one it does not evaluate may never
    match and the dispatcher is refused at AUTH. The grant is project-wide, its scope documented."""
    (member,) = [unwrap(m.inputs) for m in of_type(gcp, "gcp:projects/iAMMember:IAMMember")]
    assert "condition" not in member
    assert member["project"] == "p"


def test_memorystore_offers_no_instance_policy_to_bind_the_connection_role_to() -> None:
    """Google's Manage IAM authentication page grants the role project-wide only (its "limited IAM
    admin" limits who may grant it, not what it reaches), and the provider has no IAM resource for
    a Memorystore instance. The day it has one, this fails: bind the role to the instance there."""
    import pulumi_gcp.memorystore as memorystore

    assert [name for name in dir(memorystore) if "iam" in name.lower()] == []


@pytest.mark.parametrize(("name", "ok"), [
    ("voicefleet-gcp-prod", True), ("abcd", True), ("abc", False), ("a" * 63, True), ("a" * 64, False),
    ("abc-", False), ("-abc", False), ("Abcd", False), ("ab_cd", False), ("1abc", True),
])
def test_gcp_store_instance_ids_follow_memorystores_rule(name: str, ok: bool) -> None:
    assert gcp_store.valid_instance_id(name) is ok


def test_gcp_store_endpoint_and_ca_are_read_from_memorystores_nested_outputs() -> None:
    endpoints = [{"connections": [{"pscAutoConnection": {"connectionType": "CONNECTION_TYPE_PRIMARY",
                                                         "ipAddress": "10.0.0.5", "port": 6379}}]}]
    assert gcp_store._first_address(endpoints) == "10.0.0.5"
    cas = [{"caCerts": [{"certificates": ["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"]}]}]
    assert gcp_store._ca_pem(cas).startswith("-----BEGIN CERTIFICATE-----")
    assert gcp_store._first_address([]) == ""


def test_gcp_store_pins_the_ca_mode_whose_ca_it_reads(gcp: list[Registration]) -> None:
    """Only the per-instance mode lists the instance's CA in `managed_server_cas`; the API's default
    today, pinned so that a changed default cannot leave `REDIS_CA_CERT` empty."""
    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    assert unwrap(instance.inputs)["serverCaMode"] == "GOOGLE_MANAGED_PER_INSTANCE_CA"


class SharedCaMemorystore(RecordingMocks):
    """An instance in the shared-CA mode (imported, or a changed default): no CA of its own listed."""

    def new_resource(self, args: object) -> tuple[str, dict[str, object]]:
        rid, state = super().new_resource(args)  # type: ignore[arg-type]
        if "managedServerCas" in state:
            state["managedServerCas"] = []
        return rid, state


def test_an_instance_that_lists_no_ca_fails_the_up_instead_of_shipping_an_empty_ca() -> None:
    read: list[str] = []

    def build() -> None:
        gcp_store.CoordinationStore("vf-store", ARGS).ca_certificate.apply(read.append)

    run_function(build, RecordingMocks())
    assert len(read) == 1 and read[0].startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(Exception, match="lists no server CA"):
        run_function(build, SharedCaMemorystore())
    with pytest.raises(ValueError, match="server_ca_mode GOOGLE_MANAGED_PER_INSTANCE_CA"):
        gcp_store._ca_pem([])



def test_several_gcp_instances_with_the_channel_share_memorystore_through_the_vpc(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS},
                **{**CHANNEL["gcp"], "dispatcherMinInstances": "2", "dispatcherMaxInstances": "3"})
    (instance,) = run.of_type("gcp:memorystore/instance:Instance")
    assert unwrap(instance.inputs)["authorizationMode"] == "IAM_AUTH"
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    template = unwrap(service.inputs)["template"]
    envs = {e["name"]: e.get("value") for e in template["containers"][0]["envs"]}
    assert envs["REDIS_AUTH"] == "gcp-iam" and envs["REDIS_URL"].startswith("rediss://")
    assert "REDIS_CA_CERT" in envs and "REDIS_PASSWORD" not in envs
    assert template["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"
    assert template["scaling"]["minInstanceCount"] == 2
    (member,) = [unwrap(m.inputs) for m in run.of_type("gcp:projects/iAMMember:IAMMember")
                 if unwrap(m.inputs)["role"] == "roles/memorystore.dbConnectionUser"]
    assert member["member"].startswith("serviceAccount:") and "dispatcher" in member["member"]


def test_one_gcp_instance_has_no_store(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["gcp"])
    assert run.of_type("gcp:memorystore/instance:Instance") == []


def test_the_store_waits_for_the_apis_it_is_created_through(stack: StackRunner) -> None:
    """N3: on a project where Memorystore and Network Connectivity are off, the service connection
    policy and the instance fail with SERVICE_DISABLED; the stack enables them and each waits."""
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS},
                **{**CHANNEL["gcp"], "dispatcherMinInstances": "2", "dispatcherMaxInstances": "3"})
    services = {r.inputs["service"]: r for r in run.of_type("gcp:projects/service:Service")}
    needed = {f"{api}.googleapis.com" for api in ("memorystore", "networkconnectivity", "serviceconsumermanagement")}
    assert needed <= set(services)
    assert not any(services[api].inputs["disableOnDestroy"] for api in needed)
    waits_for = {services[api].urn for api in needed}
    for typ in ("gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy",
                "gcp:memorystore/instance:Instance"):
        (created,) = run.of_type(typ)
        assert waits_for <= set(created.dependencies), typ


def test_a_gcp_stack_without_the_store_enables_no_store_api(stack: StackRunner) -> None:
    services = {r.inputs["service"] for r in stack("gcp").of_type("gcp:projects/service:Service")}
    assert "memorystore.googleapis.com" not in services


def test_a_moved_service_connection_policy_is_deleted_before_its_replacement(gcp: list[Registration]) -> None:
    """Review 1: the policy's name is fixed and its network immutable; created before the old one is
    deleted (Pulumi's default), the replacement of a network move collides with the live policy."""
    from stacks.tools.preflight import lifecycle

    (policy,) = of_type(gcp, "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy")
    assert policy.delete_before_replace
    assert lifecycle.replacement_order_violations(gcp) == []
    assert lifecycle.replacement_order_violations([dataclasses.replace(policy, delete_before_replace=False)])
    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    assert policy.urn in instance.dependencies  # the instance's endpoints move only once the new policy exists


def test_a_moved_store_instance_is_deleted_before_its_replacement(gcp: list[Registration]) -> None:
    """Its id is fixed and `desiredAutoCreatedEndpoints` is immutable (terraform-provider-google
    resource_memorystore_instance.go, ForceNew): a network move replaces the instance, and a
    replacement created first collides with the live instance by id."""
    from stacks.tools.preflight import lifecycle

    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    assert instance.delete_before_replace
    assert lifecycle.replacement_order_violations([dataclasses.replace(instance, delete_before_replace=False)])
