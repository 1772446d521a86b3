"""The agent-sandbox mode's ValidatingAdmissionPolicy, as the stack sends it, evaluated on the requests a
cluster will put to it: its CEL by cel-python (a CEL implementation of the spec the API server's cel-go
follows), its match by the rules' own semantics (a resource rule names a subresource only as
`resource/subresource`; operations and groups listed, `*` for any). The stack's own later `up` and
`destroy`, the dispatcher's claims and `PATCH …/scale`, the controller's and the collector's writes pass;
everyone else's writes to what the pool bots' trust rests on are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import celpy
import pytest

from dispatcher.machines.k8s.claims import claim_body
from stacks.tools.mocks import Run, unwrap
from tests.infra.k8s.admission_cel import Call, evaluate, refusal
from tests.infra.k8s.conftest import K8sRunner

DEPLOYER = "ci-deployer@example-project.iam.gserviceaccount.com"
CONTROLLER = "system:serviceaccount:agent-sandbox-system:agent-sandbox-controller"
DISPATCHER = "system:serviceaccount:voicefleet:voicefleet-dispatcher"
COLLECTOR = "system:serviceaccount:kube-system:generic-garbage-collector"
NAMESPACES = "system:serviceaccount:kube-system:namespace-controller"
KUBELET = "system:node:node-1"
SOMEONE = "alice@example.com"  # a person with `edit` in the bots' namespace
POOL_GROUP, SANDBOX_GROUP = "extensions.agents.x-k8s.io", "agents.x-k8s.io"
POD = {"metadata": {"name": "p", "ownerReferences": [{"kind": "Sandbox", "name": "p", "uid": "u1"}]},
       "spec": {"containers": [{"name": "bot", "image": "bot@sha256:" + "b" * 64}]}}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.infra import program_cache
    from tests.infra.conftest import K8S_STACK_SECRETS, config_for

    config = config_for("k8s", {"k8sMode": "agent-sandbox", "k8sDeployer": DEPLOYER}, K8S_STACK_SECRETS)
    run: Run = program_cache.run(config, list(K8S_STACK_SECRETS), stack="k8s-test", generation=1, previous=None)
    return unwrap(run.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy").inputs)["spec"]


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("resource", ["sandboxtemplates", "sandboxwarmpools"])
def test_only_the_deployer_creates_or_changes_the_template_and_the_pool(
        policy: dict[str, Any], operation: str, resource: str) -> None:
    old = None if operation == "CREATE" else {"spec": {}}
    assert refusal(policy, Call(DEPLOYER, operation, POOL_GROUP, resource, old=old, obj={"spec": {}})) is None
    refused = refusal(policy, Call(SOMEONE, operation, POOL_GROUP, resource, old=old, obj={"spec": {}}))
    assert refused == "only voicefleet's deployer creates or changes the bots' SandboxTemplates and SandboxWarmPools"


@pytest.mark.parametrize("user", [CONTROLLER, COLLECTOR])
@pytest.mark.parametrize("resource", ["sandboxtemplates", "sandboxwarmpools"])
def test_the_controller_and_the_collector_change_the_template_and_the_pools_metadata_never_their_spec(
        policy: dict[str, Any], resource: str, user: str) -> None:
    """The template's spec names the image a replica admits while a new one rolls out; the pool's names the
    template: only the deployer chooses either."""
    spec = {"podTemplate": {"spec": {"containers": [{"name": "bot", "image": "bot@sha256:" + "b" * 64}]}},
            "sandboxTemplateRef": {"name": "voicefleet-bot"}}
    old = {"metadata": {"labels": {}}, "spec": spec}
    labelled = {"metadata": {"labels": {"agents.x-k8s.io/sandbox-template-ref-hash": "0f0f0f0f"}}, "spec": spec}
    assert refusal(policy, Call(user, "UPDATE", POOL_GROUP, resource, old=old, obj=labelled)) is None
    swapped = {**labelled, "spec": {**spec, "sandboxTemplateRef": {"name": "elsewhere"},
                                    "podTemplate": {"spec": {"containers": [{"name": "bot", "image": "evil"}]}}}}
    refused = refusal(policy, Call(user, "UPDATE", POOL_GROUP, resource, old=old, obj=swapped))
    assert refused == "only voicefleet's deployer creates or changes the bots' SandboxTemplates and SandboxWarmPools"
    assert refusal(policy, Call(user, "CREATE", POOL_GROUP, resource, obj=labelled)) is not None


@pytest.mark.parametrize("resource", ["sandboxtemplates", "sandboxwarmpools"])
def test_a_destroy_by_another_user_than_the_deployer_is_rbacs_to_refuse_not_the_policys(
        policy: dict[str, Any], resource: str) -> None:
    """Else a destroy stops halfway: the dispatcher gone, the pool left running."""
    assert refusal(policy, Call(SOMEONE, "DELETE", POOL_GROUP, resource, old={"spec": {}}, obj=None)) is None


def test_every_refusal_is_forbidden_so_a_preview_does_not_stop_at_the_policy_it_changes(
        policy: dict[str, Any]) -> None:
    """pulumi-kubernetes' preview passes over a 403 of its server-side dry run: an `up` that fixes
    k8sDeployer reaches the policy's update instead of failing at the template's dry run."""
    assert {v.get("reason") for v in policy["validations"]} == {"Forbidden"}


@pytest.mark.parametrize("user", [DISPATCHER, SOMEONE])
def test_the_pools_scale_is_anyones_with_the_verb(policy: dict[str, Any], user: str) -> None:
    """The dispatcher's PATCH …/scale (an update of the subresource), `kubectl scale`, an HPA."""
    call = Call(user, "UPDATE", POOL_GROUP, "sandboxwarmpools", "scale", obj={"spec": {"replicas": 3}},
                old={"spec": {"replicas": 1}})
    assert refusal(policy, call) is None
    # …and were a rule ever to match it, the expression lets a subresource through too.
    assert refusal({**policy, "matchConstraints": {**policy["matchConstraints"], "resourceRules": [
        {"apiGroups": [POOL_GROUP], "apiVersions": ["*"], "operations": ["*"],
         "resources": ["sandboxwarmpools/scale"]}]}}, call) is None


def test_the_dispatcher_creates_and_deletes_claims_and_nobody_else_creates_one(policy: dict[str, Any]) -> None:
    assert refusal(policy, Call(DISPATCHER, "CREATE", POOL_GROUP, "sandboxclaims", obj=dispatchers_claim())) is None
    assert refusal(policy, Call(DISPATCHER, "DELETE", POOL_GROUP, "sandboxclaims", obj=None)) is None
    assert "only the dispatcher creates SandboxClaims" in str(
        refusal(policy, Call(SOMEONE, "CREATE", POOL_GROUP, "sandboxclaims", obj={"spec": {}})))
    edited = Call(SOMEONE, "UPDATE", POOL_GROUP, "sandboxclaims", obj={"spec": {"env": [{"name": "A"}]}},
                  old={"spec": {}})
    assert "only the dispatcher creates SandboxClaims" in str(refusal(policy, edited))
    labelled = Call(SOMEONE, "UPDATE", POOL_GROUP, "sandboxclaims", obj={"spec": {}, "metadata": {"labels": {}}},
                    old={"spec": {}})
    assert refusal(policy, labelled) is None  # its spec as it was
    assert refusal(policy, Call(CONTROLLER, "UPDATE", POOL_GROUP, "sandboxclaims", obj={"spec": {"a": 1}},
                                old={"spec": {}})) is None


CLAIM_SPEC = "a SandboxClaim's spec is what the dispatcher sends"


def dispatchers_claim() -> dict[str, Any]:
    return claim_body("vf-s1", pool="voicefleet-bot", session_id="s1", release="default",
                      notes={"voicefleet.io/launch": "l1"}, shutdown_after_seconds=1860)


def test_a_claim_sets_no_env_the_bots_is_its_templates(policy: dict[str, Any]) -> None:
    """A claim's env would reach its pod (the trace endpoint among it, pointing the bots' Secret's collector
    headers elsewhere): refused from the dispatcher too, whatever the controller's envVarsInjectionPolicy."""
    pointed = {"spec": {"warmPoolRef": {"name": "voicefleet-bot"}, "env": [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "https://collector.attacker.example"}]}}
    for old in (None, {"spec": {"warmPoolRef": {"name": "voicefleet-bot"}}}):
        call = Call(DISPATCHER, "UPDATE" if old else "CREATE", POOL_GROUP, "sandboxclaims", obj=pointed, old=old)
        assert CLAIM_SPEC in str(refusal(policy, call))
    # One made before the policy with env is not stopped from being un-owned or labelled.
    assert refusal(policy, Call(COLLECTOR, "UPDATE", POOL_GROUP, "sandboxclaims", obj=pointed, old=pointed)) is None


CLAIM_CHANGES: dict[str, Callable[[dict[str, Any]], object]] = {
    # The OpenTelemetry Operator injects another namespace's Instrumentation (its endpoint, its env) into the pod.
    "a webhook's annotation on its pod": lambda spec: spec["additionalPodMetadata"]["annotations"].update(
        {"instrumentation.opentelemetry.io/inject-python": "elsewhere/evil"}),
    "another session's id on its pod": lambda spec: spec["additionalPodMetadata"]["annotations"].update(
        {"voicefleet.io/session": "s2"}),
    "a label on its pod": lambda spec: spec["additionalPodMetadata"].update(labels={"sandbox.users.io/x": "y"}),
    "a volume claim": lambda spec: spec.update(volumeClaimTemplates=[{"metadata": {"name": "v"}}]),
    "a template of its own (v1alpha1)": lambda spec: spec.update(sandboxTemplateRef={"name": "evil"}),
    "a pool named the v1alpha1 way": lambda spec: spec.update(warmpool="evil"),
    # Its end: a claim with none, or one that leaves its Sandbox and pod running, holds a bot past its session.
    "no lifecycle": lambda spec: spec.pop("lifecycle"),
    "no shutdown time": lambda spec: spec["lifecycle"].pop("shutdownTime"),
    "its sandbox kept at its end": lambda spec: spec["lifecycle"].update(shutdownPolicy="Retain"),
    "no shutdown policy": lambda spec: spec["lifecycle"].pop("shutdownPolicy"),
    "kept a year once finished": lambda spec: spec["lifecycle"].update(ttlSecondsAfterFinished=31536000),
    "kept for ever once finished": lambda spec: spec["lifecycle"].pop("ttlSecondsAfterFinished"),
}


def test_the_dispatchers_own_claim_is_admitted(policy: dict[str, Any]) -> None:
    assert refusal(policy, Call(DISPATCHER, "CREATE", POOL_GROUP, "sandboxclaims", obj=dispatchers_claim())) is None


@pytest.mark.parametrize("change", list(CLAIM_CHANGES))
def test_a_claim_holds_only_what_the_dispatcher_sends(policy: dict[str, Any], change: str) -> None:
    claim = dispatchers_claim()
    CLAIM_CHANGES[change](claim["spec"])
    assert CLAIM_SPEC in str(refusal(policy, Call(DISPATCHER, "CREATE", POOL_GROUP, "sandboxclaims", obj=claim)))


def test_the_stacks_template_leaves_claims_env_disallowed(k8s_stack: K8sRunner) -> None:
    """agent-sandbox's envVarsInjectionPolicy defaults to Disallowed: the controller refuses a claim's env."""
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer=DEPLOYER)
    templates = run.of_type("kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate")
    assert templates and all("envVarsInjectionPolicy" not in unwrap(t.inputs)["spec"] for t in templates)


def test_only_the_controller_makes_sandboxes_and_pods(policy: dict[str, Any]) -> None:
    for resource, group in (("sandboxes", SANDBOX_GROUP), ("pods", "")):
        assert refusal(policy, Call(CONTROLLER, "CREATE", group, resource, obj=POD)) is None
        for user in (SOMEONE, DISPATCHER, DEPLOYER):
            assert refusal(policy, Call(user, "CREATE", group, resource, obj=POD)) is not None, (user, resource)
    assert refusal(policy, Call(NAMESPACES, "DELETE", SANDBOX_GROUP, "sandboxes", obj=None, old={})) is None
    assert refusal(policy, Call(COLLECTOR, "DELETE", SANDBOX_GROUP, "sandboxes", obj=None, old={})) is None
    assert refusal(policy, Call(SOMEONE, "DELETE", SANDBOX_GROUP, "sandboxes", obj=None, old={})) is not None


def test_a_pods_spec_never_changes_and_its_owners_only_by_the_controller_or_the_collector(
        policy: dict[str, Any]) -> None:
    relabelled = {**POD, "metadata": {**POD["metadata"], "labels": {"agents.x-k8s.io/claim-uid": "c"}}}
    assert refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=relabelled, old=POD)) is None
    respecced = {**POD, "spec": {"containers": [{"name": "bot", "image": "evil"}]}}
    for user in (SOMEONE, CONTROLLER):
        assert "nobody changes their spec" in str(refusal(policy, Call(user, "UPDATE", "", "pods", obj=respecced,
                                                                       old=POD)))
    reowned = {**POD, "metadata": {**POD["metadata"], "ownerReferences": [{"kind": "Sandbox", "uid": "u2"}]}}
    assert refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=reowned, old=POD)) is not None
    assert refusal(policy, Call(COLLECTOR, "UPDATE", "", "pods", obj=reowned, old=POD)) is None


def test_a_pods_voicefleet_labels_and_annotations_change_only_by_the_controller(policy: dict[str, Any]) -> None:
    marked = {**POD, "metadata": {**POD["metadata"], "annotations": {"voicefleet.io/session": "s1", "other": "x"},
                                  "labels": {"voicefleet.io/app": "bot"}}}
    rewritten = {**marked, "metadata": {**marked["metadata"], "annotations": {"voicefleet.io/session": "s2"}}}
    dropped = {**marked, "metadata": {**marked["metadata"], "labels": {}}}
    added = {**marked, "metadata": {**marked["metadata"], "annotations": {
        **marked["metadata"]["annotations"], "voicefleet.io/bot-env": "{}"}}}
    others = {**marked, "metadata": {**marked["metadata"], "annotations": {"voicefleet.io/session": "s1"}}}
    for changed in (rewritten, dropped, added):
        assert "voicefleet.io/ labels and annotations" in str(
            refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=changed, old=marked)))
        assert refusal(policy, Call(CONTROLLER, "UPDATE", "", "pods", obj=changed, old=marked)) is None
    assert refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=others, old=marked)) is None  # not ours


@pytest.mark.parametrize(("subresource", "operation"), [
    ("exec", "CONNECT"), ("attach", "CONNECT"), ("portforward", "CONNECT"), ("proxy", "CONNECT"),
    ("ephemeralcontainers", "UPDATE")])
def test_nobody_enters_a_bots_pod(policy: dict[str, Any], subresource: str, operation: str) -> None:
    for user in (SOMEONE, CONTROLLER, DEPLOYER):
        assert refusal(policy, Call(user, operation, "", "pods", subresource, obj=None)) is not None


def test_only_the_kubelets_mint_the_bots_tokens(policy: dict[str, Any]) -> None:
    minted = Call(KUBELET, "CREATE", "", "serviceaccounts", "token", name="voicefleet-bot", groups=("system:nodes",))
    assert refusal(policy, minted) is None
    assert refusal(policy, Call(SOMEONE, "CREATE", "", "serviceaccounts", "token", name="voicefleet-bot")) == \
        "only the kubelets mint tokens for the bots' ServiceAccount"
    assert refusal(policy, Call(SOMEONE, "CREATE", "", "serviceaccounts", "token", name="other")) is None


def test_other_namespaces_are_not_the_policys(policy: dict[str, Any]) -> None:
    assert refusal(policy, Call(SOMEONE, "CREATE", "", "pods", obj=POD, namespace="default")) is None


def test_a_deployer_who_is_not_the_kubeconfigs_user_is_refused_the_next_up(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer="someone-else")
    spec = unwrap(run.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy").inputs)["spec"]
    assert refusal(spec, Call(DEPLOYER, "UPDATE", POOL_GROUP, "sandboxtemplates", obj={"spec": {}},
                              old={"spec": {}})) is not None


def test_every_refusal_that_names_someone_names_the_user_the_api_server_saw(policy: dict[str, Any]) -> None:
    """A wrong k8sDeployer or k8sSandboxController shows at once: the message says who was refused."""
    request = celpy.json_to_cel({"userInfo": {"username": SOMEONE}})
    written = [v["messageExpression"] for v in policy["validations"] if "messageExpression" in v]
    assert len(written) == 3
    for expression in written:
        message = evaluate(expression, {"request": request})
        assert isinstance(message, str) and message.endswith(SOMEONE), message
