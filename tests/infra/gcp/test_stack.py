"""GCP stack: bot VMs without inbound access, a dispatcher that can only launch them."""

from __future__ import annotations

import json
import re

from stacks.gcp.bot_template import LAUNCH_PERMISSIONS
from stacks.gcp.network import BOT_TAG
from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import component_outputs

FIREWALL = "gcp:compute/firewall:Firewall"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"

# Custom role ids end with part of the bot account's unique id (a new one per creation: F9).
ROLE_SUFFIX = re.compile(r"_\d{8}$")


def dispatcher_container(run: Run) -> dict:
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (container,) = service.inputs["template"]["containers"]
    return container


def test_no_inbound_firewall_rule_exists(gcp: Run) -> None:
    rules = gcp.of_type(FIREWALL)
    assert rules and [r.name for r in rules if r.inputs.get("direction", "INGRESS") != "EGRESS"] == []


def test_bots_may_send_udp_and_https_and_nothing_else(gcp: Run) -> None:
    rules = [r.inputs for r in gcp.of_type(FIREWALL) if r.inputs["targetTags"] == [BOT_TAG]]
    allowed = sorted((a["protocol"], tuple(a.get("ports", ()))) for r in rules for a in r.get("allows", []))
    assert allowed == [("tcp", ("443",)), ("udp", ())]
    (deny,) = [r for r in rules if r.get("denies")]
    assert deny["denies"] == [{"protocol": "all"}] and deny["priority"] > max(
        r["priority"] for r in rules if r.get("allows"))


def test_bot_template_runs_the_image_by_digest_on_container_optimized_os(gcp: Run) -> None:
    (template,) = gcp.of_type(TEMPLATE)
    assert template.inputs["disks"][0]["sourceImage"] == "projects/cos-cloud/global/images/family/cos-stable"
    image = template.inputs["metadata"][contract.GCE_IMAGE_METADATA_KEY]
    assert re.fullmatch(r"europe-west4-docker\.pkg\.dev/vf-test/voicefleet-gcp-test/bot@sha256:[0-9a-f]{64}", image)
    assert template.inputs["tags"] == [BOT_TAG]
    assert template.inputs["serviceAccount"]["email"] == "vf-gcp-test-bot@vf-test.iam.gserviceaccount.com"


def test_bot_template_deletes_the_vm_after_the_longest_session(stack: StackRunner) -> None:
    (template,) = stack("gcp", maxSessionSeconds="600").of_type(TEMPLATE)
    scheduling = template.inputs["scheduling"]
    assert scheduling["instanceTerminationAction"] == "DELETE"
    assert scheduling["maxRunDuration"]["seconds"] == 600 + 300
    assert scheduling["automaticRestart"] is False


def test_startup_script_reads_session_values_from_metadata_into_a_private_env_file(gcp: Run) -> None:
    (template,) = gcp.of_type(TEMPLATE)
    script = template.inputs["metadata"]["startup-script"]
    for key, env in contract.GCE_SESSION_METADATA.items():
        assert f"put {env} {key}" in script
    assert "umask 077" in script and "install -m 0600 /dev/null" in script
    assert "--env-file" in script and not re.search(r"\s(-e|--env)\s", script)
    assert "gce-container-declaration" not in template.inputs["metadata"]


def test_dispatcher_can_launch_bots_and_act_as_the_bot_account_only(gcp: Run) -> None:
    (role,) = [r for r in gcp.of_type("gcp:projects/iAMCustomRole:IAMCustomRole") if r.name.endswith("launcher")]
    assert sorted(role.inputs["permissions"]) == sorted(LAUNCH_PERMISSIONS)
    assert all(p.startswith(("compute.instances.", "compute.disks.create", "compute.subnetworks.use",
                             "compute.instanceTemplates.useReadOnly", "compute.instanceTemplates.get",
                             "compute.zoneOperations."))
               for p in role.inputs["permissions"])
    # Review item 3: the provider lists zone operations to see an insert refused after acceptance.
    assert "compute.zoneOperations.list" in role.inputs["permissions"]
    # …and never reads one operation (every call in dispatcher/machines/gce): least privilege.
    assert "compute.zoneOperations.get" not in role.inputs["permissions"]
    dispatcher = "serviceAccount:vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com"
    grants = [r for r in gcp.registrations if r.type.endswith(("iAMMember:IAMMember", "IamMember"))
              and r.inputs["member"] == dispatcher]
    by_role = {(r.type, ROLE_SUFFIX.sub("", r.inputs["role"])) for r in grants}
    assert ("gcp:projects/iAMMember:IAMMember", "projects/vf-test/roles/voicefleet_gcp_test_bot_launcher") in by_role
    (act_as,) = [r for r in grants if r.type == "gcp:serviceaccount/iAMMember:IAMMember"]
    assert act_as.inputs["serviceAccountId"].endswith("vf-gcp-test-bot@vf-test.iam.gserviceaccount.com")
    project_roles = {ROLE_SUFFIX.sub("", r.inputs["role"]) for r in grants
                     if r.type == "gcp:projects/iAMMember:IAMMember"}
    assert project_roles == {"projects/vf-test/roles/voicefleet_gcp_test_bot_launcher"}


def test_dispatcher_environment_is_what_the_gce_provider_reads(gcp: Run) -> None:
    container = dispatcher_container(gcp)
    names = [e["name"] for e in container["envs"]]
    assert len(names) == len(set(names))
    assert set(names) | contract.CLOUD_RUN_RESERVED_ENV == set(contract.GCE_ENV + contract.DISPATCHER_SECRETS)
    assert container["ports"]["containerPort"] == contract.DISPATCHER_PORT  # Cloud Run's PORT
    env = {e["name"]: e.get("value") for e in container["envs"]}
    templates = "projects/vf-test/global/instanceTemplates/"
    assert env["GCE_INSTANCE_TEMPLATE"].startswith(f"{templates}voicefleet-gcp-test--bot-")
    assert env["GCE_ZONE"] == "europe-west4-a" and env["MACHINES"] == "gce"


def test_the_dispatcher_prices_its_idle_bots_by_the_templates_machine_type(gcp: Run) -> None:
    template = next(r for r in gcp.registrations if r.type == "gcp:compute/instanceTemplate:InstanceTemplate")
    env = {e["name"]: e.get("value") for e in dispatcher_container(gcp)["envs"]}
    assert env["GCE_MACHINE_TYPE"] == template.inputs["machineType"]


def test_dispatcher_secrets_are_secret_manager_references(gcp: Run) -> None:
    refs = {e["name"]: e["valueSource"]["secretKeyRef"] for e in dispatcher_container(gcp)["envs"]
            if "valueSource" in e}
    # Pinned to the stack's SecretVersion, not "latest": a rotation is a new revision (review item 5).
    assert refs == {
        "DAILY_API_KEY": {"secret": "voicefleet-gcp-test-daily-api-key", "version": "1"},
        "DISPATCHER_API_KEYS": {"secret": "voicefleet-gcp-test-dispatcher-api-keys", "version": "1"},
        "DISPATCHER_ADMIN_KEYS": {"secret": "voicefleet-gcp-test-dispatcher-admin-keys", "version": "1"},
    }


def test_cloud_run_waits_for_its_secret_versions_and_its_read_grants(gcp: Run) -> None:
    """Review item 7: a revision created before its identity may read its secrets fails."""
    (service,) = gcp.of_type("gcp:cloudrunv2/service:Service")
    dispatcher = "serviceAccount:vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com"
    needed = [r.urn for r in gcp.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
              if r.inputs["member"] == dispatcher]
    needed += [r.urn for r in gcp.of_type("gcp:secretmanager/secretVersion:SecretVersion")]
    assert len(needed) == 2 * len(contract.DISPATCHER_SECRETS) and set(needed) <= set(service.dependencies)


def test_vms_are_named_and_reaped_per_stack(gcp: Run) -> None:
    env = {e["name"]: e.get("value") for e in dispatcher_container(gcp)["envs"]}
    assert env["GCE_INSTANCE_PREFIX"] == "vf-gcp-test-"  # VMs are vf-gcp-test--<id>: see the IAM conditions


def conditions(run: Run, role_suffix: str) -> list[str]:
    return [r.inputs["condition"]["expression"] for r in run.of_type("gcp:projects/iAMMember:IAMMember")
            if ROLE_SUFFIX.sub("", r.inputs["role"]).endswith(role_suffix)]


def test_launcher_and_self_delete_reach_only_this_stacks_vms(gcp: Run) -> None:
    """Review item 10: the launcher role no longer covers every instance in the project; bots may
    delete themselves (review item 4) under the same condition."""
    own = 'resource.name.startsWith("projects/vf-test/zones/europe-west4-a/instances/vf-gcp-test--")'
    templates = 'resource.name.startsWith("projects/vf-test/global/instanceTemplates/voicefleet-gcp-test--bot-")'
    for suffix in ("_launcher", "_self_delete"):
        (expression,) = conditions(gcp, suffix)
        assert expression == (f'(resource.type != "compute.googleapis.com/Instance" || {own}) && '
                              f'(resource.type != "compute.googleapis.com/InstanceTemplate" || {templates})'), suffix


def test_the_launcher_reads_this_stacks_templates_only(gcp: Run) -> None:
    """instances.insert reads its source template (compute.instanceTemplates.get, useReadOnly): the
    condition reaches every release template of this stack, and no other stack's, whose names a
    stack name cannot make start so ("--" is in no stack name)."""
    (expression,) = conditions(gcp, "_launcher")
    prefix = expression.rsplit('startsWith("', 1)[1].split('"', 1)[0]
    names = [t.outputs["name"] for t in gcp.of_type(TEMPLATE)]
    assert names and all(f"projects/vf-test/global/instanceTemplates/{name}".startswith(prefix) for name in names)
    for other in ("gcp-test-bot", "gcp-test-2", "gcp"):
        assert not f"projects/vf-test/global/instanceTemplates/voicefleet-{other}--bot-2026".startswith(prefix)
    (self_delete,) = [r for r in gcp.of_type("gcp:projects/iAMCustomRole:IAMCustomRole") if r.name.endswith("delete")]
    assert self_delete.inputs["permissions"] == ["compute.instances.delete"]


def test_the_vm_deletes_itself_when_the_session_ends_instead_of_powering_off(gcp: Run) -> None:
    """Review item 4: a stopped VM is TERMINATED, which clears maxRunDuration; it must delete itself."""
    (template,) = gcp.of_type(TEMPLATE)
    script = template.inputs["metadata"]["startup-script"]
    assert "trap delete_self EXIT" in script
    assert re.search(r"-X DELETE .*\n.*compute/v1/projects/\$project/zones/\$zone/instances/\$name", script)
    assert script.count("poweroff") == 1 and "|| poweroff" in script  # only if the delete fails
    assert not re.search(r"docker create [^\n]*--init", script)  # the image's tini is the one init


def test_bot_provider_keys_reach_gcp_vms_by_reference_read_at_boot(stack: StackRunner) -> None:
    keys = {"deepgramApiKey": "SENTINEL-dg", "cartesiaApiKey": "SENTINEL-ca", "openaiApiKey": "SENTINEL-oa"}
    run = stack("gcp", **keys)
    (template,) = run.of_type(TEMPLATE)
    refs = template.inputs["metadata"][contract.GCE_SECRETS_METADATA_KEY]
    assert refs == ",".join(f"{env}=projects/vf-test/secrets/voicefleet-gcp-test-{env.lower().replace('_', '-')}"
                            "/versions/1" for env in ("CARTESIA_API_KEY", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"))
    bot = "serviceAccount:vf-gcp-test-bot@vf-test.iam.gserviceaccount.com"
    readable = [r for r in run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
                if r.inputs["member"] == bot]
    assert len(readable) == 3 and {r.urn for r in readable} <= set(template.dependencies)
    assert "SENTINEL" not in json.dumps(unwrap(template.inputs))  # values only in Secret Manager
    script = template.inputs["metadata"]["startup-script"]
    assert "secretmanager.googleapis.com/v1/" in script and ":access" in script


def test_dispatcher_scaling_and_deletion_protection_follow_the_environment(stack: StackRunner) -> None:
    run = stack("gcp", protect="true", dispatcherMinInstances="2", dispatcherMaxInstances="4")
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    assert service.inputs["deletionProtection"] is True
    assert service.inputs["template"]["scaling"] == {"minInstanceCount": 2, "maxInstanceCount": 4}
    assert all(r.protect for r in run.of_type("gcp:secretmanager/secret:Secret"))


def test_every_gcp_resource_uses_the_default_labelled_provider(gcp: Run) -> None:
    (provider,) = gcp.of_type("pulumi:providers:gcp")
    labels = unwrap(provider.inputs["defaultLabels"])
    labels = labels if isinstance(labels, dict) else __import__("json").loads(labels)
    assert labels == {"project": "voicefleet", "stack": "gcp-test", "environment": "dev", "managed-by": "pulumi"}
    resources = [r for r in gcp.registrations if r.type.startswith("gcp:")]
    assert resources and all(r.provider.startswith(provider.urn + "::") for r in resources)


def test_required_apis_are_enabled_and_left_on_at_destroy(gcp: Run) -> None:
    services = {r.inputs["service"]: r.inputs["disableOnDestroy"] for r in gcp.of_type("gcp:projects/service:Service")}
    assert {"compute.googleapis.com", "run.googleapis.com", "artifactregistry.googleapis.com",
            "secretmanager.googleapis.com"} <= set(services)
    assert not any(services.values())


def test_the_bot_account_pulls_from_its_repository_and_writes_logs_and_no_more(gcp: Run) -> None:
    """A VM's account without these grants boots no bot: the image pull and the logs are refused."""
    members = [r for r in gcp.registrations if r.type.endswith(("iAMMember:IAMMember", "IamMember"))
               and "-bot@" in str(r.inputs.get("member"))]
    roles = sorted((r.type, ROLE_SUFFIX.sub("", r.inputs["role"])) for r in members)
    assert roles == sorted([
        ("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "roles/artifactregistry.reader"),
        ("gcp:projects/iAMMember:IAMMember", "roles/logging.logWriter"),
        ("gcp:projects/iAMMember:IAMMember", "projects/vf-test/roles/voicefleet_gcp_test_bot_self_delete"),
    ])


def test_a_cloudrun_bot_runtime_runs_a_bot_job_the_dispatcher_may_run_and_nothing_else(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"])
    assert run.of_type(TEMPLATE) == []  # no VMs: no template, no launcher role over instances
    (job,) = run.of_type("gcp:cloudrunv2/job:Job")
    assert job.inputs["template"]["template"]["maxRetries"] == 0
    (container,) = job.inputs["template"]["template"]["containers"]
    assert re.fullmatch(r"europe-west4-docker\.pkg\.dev/vf-test/voicefleet-gcp-test/bot(-webrtc)?@sha256:[0-9a-f]{64}",
                        container["image"])
    env = {e["name"]: e["value"] for e in dispatcher_container(run)["envs"] if "value" in e}
    assert env["MACHINES"] == "cloudrun" and env["CLOUDRUN_JOB"] == job.inputs["name"]
    assert env["CLOUDRUN_REGION"] == job.inputs["location"] and env["CLOUDRUN_BOT_SERVICE_ACCOUNT_ID"]
    assert not any(key.startswith("GCE_") for key in env)
    (binding,) = run.of_type("gcp:cloudrunv2/jobIamMember:JobIamMember")
    assert binding.inputs["member"] == "serviceAccount:vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com"
    dispatcher_roles = [b.inputs["role"] for b in run.of_type("gcp:projects/iAMMember:IAMMember")
                        if b.inputs["member"] == binding.inputs["member"]]
    assert not any("launcher" in role or "run." in role for role in dispatcher_roles), dispatcher_roles
    outputs = component_outputs(run, "gcp")
    assert outputs["botJob"] == job.inputs["name"] and "botInstanceTemplate" not in outputs
    assert unwrap(outputs["machinesEnvironment"])["CLOUDRUN_JOB"] == job.inputs["name"]


def cloudrun_stack(stack: StackRunner) -> Run:
    return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"])


def test_switching_bot_runtime_claims_no_account_id_twice(stack: StackRunner) -> None:
    """Pulumi creates the new runtime's resources before it deletes the old one's: an account id that
    a resource of the other runtime holds would fail the create (`alreadyExists`)."""
    def accounts(run: Run) -> dict[str, str]:
        return {r.inputs["accountId"]: r.urn for r in run.of_type("gcp:serviceaccount/account:Account")}

    gce = accounts(stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["gcp"]))
    cloudrun = accounts(cloudrun_stack(stack))
    assert {i: (gce[i], cloudrun[i]) for i in gce.keys() & cloudrun.keys() if gce[i] != cloudrun[i]} == {}
    assert "vf-gcp-test-botjob" in cloudrun and "vf-gcp-test-bot" in gce


def test_cloudrun_bots_leave_through_the_bots_subnetwork_its_firewall_and_a_nat(stack: StackRunner) -> None:
    run = cloudrun_stack(stack)
    (job,) = run.of_type("gcp:cloudrunv2/job:Job")
    access = job.inputs["template"]["template"]["vpcAccess"]
    (subnetwork,) = run.of_type("gcp:compute/subnetwork:Subnetwork")
    (interface,) = access["networkInterfaces"]
    assert access["egress"] == "ALL_TRAFFIC" and interface["tags"] == [BOT_TAG]
    assert interface["subnetwork"].rsplit("/", 1)[-1] == subnetwork.name  # the bots' own (the mocks' id)
    (nat,) = run.of_type("gcp:compute/routerNat:RouterNat")
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert [(s["name"], s["sourceIpRangesToNats"]) for s in nat.inputs["subnetworks"]] == [
        (interface["subnetwork"], ["ALL_IP_RANGES"])]
    allowed = [r.inputs["allows"] for r in run.of_type(FIREWALL) if r.inputs.get("targetTags") == [BOT_TAG]
               and r.inputs.get("direction") == "EGRESS" and r.inputs.get("allows")]
    assert [{"protocol": "tcp", "ports": ["3478"]}] in allowed  # TURN over TCP: Cloud Run documents no UDP
    # Cloud Run holds its addresses in the subnetwork for hours after the job is gone: kept at destroy.
    (network,) = [n for n in run.of_type("gcp:compute/network:Network")
                  if n.inputs.get("description") == "voicefleet bots"]
    assert network.retain_on_delete and subnetwork.retain_on_delete
