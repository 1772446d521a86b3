"""`k8sMode: agent-sandbox` under the mocks: the SandboxTemplate and SandboxWarmPool (valid against agent-sandbox's
own CRD schemas), the pool's pod as the dispatcher checks a pool bot's, the dispatcher told the mode and the pool,
and the admission policy (valid against the v1 schema, in strict mode) with this stack's names in it."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from dispatcher.machines.k8s.pods import LABEL_RELEASE
from dispatcher.machines.k8s.pool_pod import pool_pod_problem
from dispatcher.machines.k8s.settings import DEFAULT_WARM_POOL, K8sSettings
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.releases.traffic import Traffic
from stacks.shared import contract
from stacks.tools.mocks import Registration, Run, unwrap
from tests.fakes.k8s import KUBE_VERSION
from tests.fakes.k8s_sandbox import crd_schemas, schema_problems
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env, dispatcher_secret, spec
from tests.infra.k8s.test_stack import masked

TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"
POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
DEPLOYER = "ci-deployer@example-project.iam.gserviceaccount.com"


@pytest.fixture
def sandbox(k8s_stack: K8sRunner) -> Run:
    return k8s_stack(k8sMode="agent-sandbox", k8sDeployer=DEPLOYER)


def body(reg: Registration) -> dict[str, Any]:
    """The object as the provider sends it: the engine carries every number as a double, JSON does not."""
    return integral(unwrap(reg.inputs))


def integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    return value


def pod_template(run: Run) -> dict[str, Any]:
    return body(default(run, TEMPLATE))["spec"]["podTemplate"]


def default(run: Run, typ: str) -> Registration:
    """The one object of `typ` that is not a release's (the default release's pool and template, K8S_WARM_POOL)."""
    found = [r for r in run.of_type(typ)
             if LABEL_RELEASE not in (unwrap(r.inputs).get("metadata") or {}).get("labels", {})]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def dispatcher_env(run: Run) -> dict[str, str]:
    return {name: entry["value"] for name, entry in container_env(run).items() if "value" in entry}


def test_the_template_the_pool_and_the_policy_go_through_the_stacks_provider_under_their_components(
        sandbox: Run) -> None:
    (provider,) = sandbox.of_type("pulumi:providers:kubernetes")
    components = {r.urn: r for r in sandbox.registrations if not r.custom}
    for typ, component in ((TEMPLATE, "WarmPool"), (POOL, "WarmPool"), (POLICY, "BotAdmission"),
                           (BINDING, "BotAdmission")):
        reg = default(sandbox, typ)
        assert reg.provider.rsplit("::", 1)[0] == provider.urn, typ
        parent = components[reg.parent]
        assert parent.type == f"voicefleet:k8s:{component}"
        assert components[parent.parent].type == "voicefleet:k8s:K8sStack"


def test_the_pods_mode_creates_no_template_or_pool_and_its_own_policy(k8s: Run) -> None:
    assert [r.type for r in k8s.registrations if r.type in (TEMPLATE, POOL)] == []
    assert unwrap(k8s.one(POLICY).inputs)["metadata"]["name"].endswith("-bots-made-by-the-dispatcher")


@pytest.mark.parametrize(("typ", "plural"), [(TEMPLATE, "sandboxtemplates"), (POOL, "sandboxwarmpools")])
def test_the_template_and_the_pool_validate_against_agent_sandboxs_crds(sandbox: Run, typ: str, plural: str) -> None:
    schema = crd_schemas(plural)["v1beta1"]
    sent = body(default(sandbox, typ))
    assert sent["apiVersion"] == "extensions.agents.x-k8s.io/v1beta1"
    assert schema_problems(sent, schema) == ([], [])
    wrong = copy.deepcopy(sent)  # the check can fail: a field the CRD does not know
    wrong["spec"]["podTemplates"] = wrong["spec"].pop("podTemplate", None) or wrong["spec"].pop("replicas")
    assert schema_problems(wrong, schema)[0]


def test_the_pool_pod_is_a_strict_v1_pod_the_dispatcher_takes_for_its_pool_bots(sandbox: Run) -> None:
    template = pod_template(sandbox)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "template",
                                  **template["metadata"]}, "spec": template["spec"]}, KUBE_VERSION, strict=True)
    env = dispatcher_env(sandbox)
    pod = {"spec": template["spec"]}
    assert pool_pod_problem("p", pod, images={env["BOT_IMAGE"]}, channel_url=env["BOT_CHANNEL_URL"]) is None
    other = copy.deepcopy(pod)
    other["spec"]["containers"][0]["image"] = "registry.example.com/other@sha256:" + "e" * 64
    assert "not the bot's image" in str(pool_pod_problem("p", other, images={env["BOT_IMAGE"]},
                                                        channel_url=env["BOT_CHANNEL_URL"]))
    assert "dials" in str(pool_pod_problem("p", pod, images={env["BOT_IMAGE"]}, channel_url="ws://elsewhere/bots/channel"))


def test_the_pool_pod_is_the_bots_pod_with_the_dispatchers_identity_and_no_credential(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer=DEPLOYER, k8sRuntimeClass="gvisor", k8sBotCpu="500m",
                    k8sBotMemory="2Gi")
    settings = K8sSettings.from_env({**dispatcher_env(run), "K8S_API_URL": "https://kubernetes.default.svc"})
    assert settings.mode == "agent-sandbox" and settings.warm_pool == DEFAULT_WARM_POOL
    template = pod_template(run)
    assert template["metadata"]["labels"] == {"voicefleet.io/app": "bot"}  # the bots' NetworkPolicies select it
    pod = template["spec"]
    assert pod["serviceAccountName"] == settings.service_account == "voicefleet-bot"
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    # No deadline from the pod's start: a warm pod claimed late keeps its whole session (its claim's
    # shutdownTime is the hard end).
    assert "activeDeadlineSeconds" not in pod
    assert pod["runtimeClassName"] == "gvisor"
    (container,) = pod["containers"]
    assert "command" not in container and "args" not in container
    assert container["resources"]["limits"] == container["resources"]["requests"] == {"cpu": "500m", "memory": "2Gi"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The channel's CA (public) projected beside the token: the pool's bots dial wss:// as every bot does.
    token, ca = volumes["voicefleet-identity"]["projected"]["sources"]
    assert ca == {"configMap": {"name": "voicefleet-channel-ca",
                                "items": [{"key": "ca.crt", "path": "channel-ca.crt"}]}}
    # The hello's precheck and TokenReview expect exactly this audience (the channel's URL by default).
    assert token["serviceAccountToken"]["audience"] == settings.token_audience == dispatcher_env(run)["BOT_CHANNEL_URL"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["BOT_IDENTITY"] == "k8s" and env["BOT_TRANSPORT"] == "daily" and "BOT_CHANNEL_TOKEN" not in env
    assert env["BOT_CHANNEL_CA_FILE"] == "/var/run/secrets/voicefleet/channel-ca.crt"
    # Nothing of a session's: a bot, warm or cold, takes its session over the channel.
    assert "BOT_ENV_FILE" not in env and not [v for v in pod["volumes"] if "downwardAPI" in v]
    assert float(env["BOT_MAX_IDLE_SECONDS"]) >= 7 * 86_400  # a warm slot is not emptied by its bot's idle cap


def test_the_templates_network_policy_is_the_bots_egress_and_no_ingress(sandbox: Run) -> None:
    policy = body(default(sandbox, TEMPLATE))["spec"]["networkPolicy"]
    (bots,) = [body(r) for r in sandbox.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
               if unwrap(r.inputs)["metadata"]["name"] == "voicefleet-bots"]
    assert policy == {"ingress": [], "egress": bots["spec"]["egress"]}
    dns, channel, internet = policy["egress"]
    assert channel["ports"] == [{"port": contract.DISPATCHER_CHANNEL_PORT, "protocol": "TCP"}]
    assert "10.0.0.0/8" in internet["to"][0]["ipBlock"]["except"]


def test_the_pool_is_the_dispatchers_recreated_on_a_new_template_and_sized_by_the_dispatcher(sandbox: Run) -> None:
    pool, template = default(sandbox, POOL), default(sandbox, TEMPLATE)
    env = dispatcher_env(sandbox)
    assert body(pool)["metadata"]["name"] == env["K8S_WARM_POOL"] == body(template)["metadata"]["name"]
    assert body(pool)["metadata"]["namespace"] == env["K8S_NAMESPACE"] == body(template)["metadata"]["namespace"]
    assert body(pool)["spec"]["sandboxTemplateRef"] == {"name": body(template)["metadata"]["name"]}
    assert body(pool)["spec"]["updateStrategy"] == {"type": "Recreate"}
    assert template.urn in pool.dependencies


@pytest.mark.parametrize(("least", "most"), [("3", "5"), ("0", "2"), ("0", "0")])
def test_the_default_pool_is_held_empty_while_releases_are_listed_and_each_releases_pool_is_the_dispatchers(
        k8s_stack: K8sRunner, least: str, most: str) -> None:
    """Every start takes a listed release's pool and the planner sizes those alone (it follows RELEASES, which
    never names the default release), so the default pool is the stack's, at 0, whatever the reserve's floor:
    an older stack's warm pods there go at the next `up`."""
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer=DEPLOYER, reserveMinIdle=least, reserveMaxIdle=most)
    pool = default(run, POOL)
    assert body(pool)["spec"]["replicas"] == 0 and pool.ignore_changes == ()
    catalogue = Catalogue.from_env({"RELEASES": dispatcher_env(run)["RELEASES"]}, local=False)
    assert DEFAULT_RELEASE not in Traffic.first(catalogue, (0, "")).weights
    released = [r for r in run.of_type(POOL) if r is not pool]
    assert released and all(r.ignore_changes == ("spec.replicas",) for r in released)  # `scale`'s, once made


def test_the_default_pool_takes_its_size_back_from_a_dispatcher_that_once_scaled_it(sandbox: Run) -> None:
    """An older stack's dispatcher sized the default pool through `scale`, so its field manager owns
    `spec.replicas`; pulumi-kubernetes' server-side apply refuses to set a field another manager owns
    unless the object asks it to force (`pulumi.com/patchForce`), which would stop the `up` that empties
    the pool. A release's pool stays the dispatcher's: the stack never writes its size after creation."""
    pool = default(sandbox, POOL)
    assert (body(pool)["metadata"].get("annotations") or {}).get("pulumi.com/patchForce") == "true"
    released = [r for r in sandbox.of_type(POOL) if r is not pool]
    assert released and not any("pulumi.com/patchForce" in (body(r)["metadata"].get("annotations") or {})
                                 for r in released)
    assert not any("annotations" in body(r)["metadata"] for r in sandbox.of_type(TEMPLATE))


def test_the_dispatcher_is_told_the_mode_and_the_pool_and_waits_for_them(sandbox: Run) -> None:
    env = dispatcher_env(sandbox)
    assert set(env) == {*contract.K8S_ENV, *contract.CHANNEL_ENV, *contract.K8S_SANDBOX_ENV,
                        *contract.K8S_CHANNEL_TLS_ENV}
    assert (env["K8S_MODE"], env["K8S_WARM_POOL"]) == ("agent-sandbox", DEFAULT_WARM_POOL)
    deployment = sandbox.one("kubernetes:apps/v1:Deployment")
    assert {default(sandbox, TEMPLATE).urn, default(sandbox, POOL).urn} <= set(deployment.dependencies)
    assert spec(deployment)["template"]["spec"]["serviceAccountName"] == "voicefleet-dispatcher"


def test_the_admission_policy_is_enforced_before_any_pool_pod_or_dispatcher_exists(sandbox: Run) -> None:
    """A policy never looks again at what was made before it: it comes first, and goes last."""
    policy = sandbox.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy").urn
    binding = sandbox.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding").urn
    for after in (default(sandbox, TEMPLATE), default(sandbox, POOL), sandbox.one("kubernetes:apps/v1:Deployment")):
        assert {policy, binding} <= set(after.dependencies), after.urn


def test_the_admission_policy_and_its_binding_are_valid_v1_objects(sandbox: Run) -> None:
    for typ in (POLICY, BINDING):
        sent = body(default(sandbox, typ))
        kubernetes_validate.validate(sent, KUBE_VERSION, strict=True)
    wrong = body(sandbox.one(BINDING))
    wrong["spec"]["policyRef"] = wrong["spec"].pop("policyName")  # the check can fail
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBE_VERSION, strict=True)
    binding, policy = body(sandbox.one(BINDING)), body(sandbox.one(POLICY))
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["metadata"]["name"].endswith("-bots-made-by-the-controller")


def test_the_policy_names_this_stacks_namespace_accounts_controller_and_deployer(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer="kubernetes-admin", k8sBotNamespace="voice-bots",
                    k8sDispatcherNamespace="voice", k8sSandboxController="sandbox-system/sandbox-controller")
    policy = body(run.one(POLICY))["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConstraints"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "voice-bots"}}
    variables = {v["name"]: v["expression"] for v in policy["variables"]}
    assert variables["controller"] == "variables.user == 'system:serviceaccount:sandbox-system:sandbox-controller'"
    rules = {v["message"]: v["expression"] for v in policy["validations"]}
    templates = rules["only voicefleet's deployer creates or changes the bots' SandboxTemplates and SandboxWarmPools"]
    assert "variables.user == 'kubernetes-admin'" in templates
    claims = rules["only the dispatcher creates SandboxClaims, and only it, the controller or the collector changes "
                   "their spec"]
    assert "variables.user == 'system:serviceaccount:voice:voicefleet-dispatcher'" in claims
    assert "request.name == 'voicefleet-bot'" in rules["only the kubelets mint tokens for the bots' ServiceAccount"]


def test_the_policy_leaves_the_pools_scale_and_every_status_to_their_writers(sandbox: Run) -> None:
    """The dispatcher's PATCH …/scale (and `kubectl scale`, an HPA) and the controllers' status writes are
    subresources: a resource rule matches a subresource only by name, and none names these."""
    rules = body(sandbox.one(POLICY))["spec"]["matchConstraints"]["resourceRules"]
    matched = [resource for rule in rules for resource in rule["resources"]]
    assert not [r for r in matched if r.endswith(("/scale", "/status")) or r.startswith("*")]
    assert {"sandboxwarmpools", "sandboxtemplates"} <= set(matched)
    templates = [v["expression"] for v in body(sandbox.one(POLICY))["spec"]["validations"]
                 if "sandboxtemplates" in v["expression"]]
    assert templates and all("request.subResource != ''" in e for e in templates)


def test_no_secret_value_is_in_the_template_the_pool_or_the_policy(sandbox: Run) -> None:
    values = [part for value in ALL_SECRETS.values() for part in value.split(",")]
    shown = [(r.type, r.name) for r in sandbox.registrations for value in values
             if value in json.dumps(masked(r.inputs), default=str)]
    assert shown == []
    assert "SENTINEL-bot-channel-token" in json.dumps(unwrap(dispatcher_secret(sandbox).inputs))
