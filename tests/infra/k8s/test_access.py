"""The dispatcher's RBAC is exactly what the pods provider calls (the claims provider's in the agent-sandbox
mode), and nothing cluster-wide but TokenReviews."""

from __future__ import annotations

import re

import kubernetes_validate

from dispatcher.machines.k8s import api
from dispatcher.machines.k8s.release_pools import POOL_VERBS
from dispatcher.machines.k8s.sandbox import CLAIM_VERBS
from stacks.tools.mocks import Run, unwrap
from tests.fakes.k8s import KUBE_VERSION
from tests.infra.helpers import ROOT
from tests.infra.k8s.conftest import K8sRunner

PROVIDER = ROOT / "dispatcher" / "machines" / "k8s"
# A call on the pods path (K8sApi.request): its method, and whether it names one pod (a path follows).
CALL = re.compile(r"\.request\(\s*\"(GET|POST|PATCH|PUT|DELETE)\"\s*(,\s*f?\"/)?")
# A watch (KubeApi.stream, k8s/watch.py: the pods provider's wait for a start); its re-list is a `list`.
WATCH = re.compile(r"\.stream\(")


def verbs_the_provider_uses() -> set[str]:
    """RBAC's verbs for the provider's calls on pods (kubernetes.io, "Determine the Request Verb")."""
    found = set()
    for source in PROVIDER.glob("*.py"):
        for method, one in CALL.findall(source.read_text()):
            found.add({"GET": "get" if one else "list", "POST": "create", "PATCH": "patch", "PUT": "update",
                       "DELETE": "delete"}[method])
        if WATCH.search(source.read_text()):
            found.add("watch")
    return found


def rules(run: Run, typ: str) -> list[dict]:
    return [rule for reg in run.of_type(typ) for rule in unwrap(reg.inputs)["rules"]]


def test_the_role_grants_exactly_the_verbs_the_pods_provider_calls_in_the_bots_namespace(k8s: Run) -> None:
    assert verbs_the_provider_uses() == {"create", "get", "list", "watch", "patch", "delete"}
    (role,) = k8s.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert unwrap(role.inputs)["metadata"]["namespace"] == "voicefleet-bots"
    (rule,) = rules(k8s, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert rule["apiGroups"] == [""] and rule["resources"] == ["pods"]
    assert set(rule["verbs"]) == verbs_the_provider_uses() and len(rule["verbs"]) == len(set(rule["verbs"]))


def test_the_one_cluster_wide_grant_is_creating_token_reviews(k8s: Run) -> None:
    assert "tokenreviews" in api.TOKEN_REVIEWS
    assert rules(k8s, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]


def test_both_grants_go_to_the_dispatchers_account_only(k8s: Run) -> None:
    subjects = [unwrap(reg.inputs)["subjects"] for reg in
                (*k8s.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"),
                 *k8s.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"))]
    assert subjects == [[{"kind": "ServiceAccount", "name": "voicefleet-dispatcher", "namespace": "voicefleet"}]] * 2


def test_the_bots_account_has_no_api_token_and_no_role(k8s: Run) -> None:
    accounts = {unwrap(r.inputs)["metadata"]["name"]: unwrap(r.inputs)
                for r in k8s.of_type("kubernetes:core/v1:ServiceAccount")}
    assert accounts["voicefleet-bot"]["automountServiceAccountToken"] is False
    assert accounts["voicefleet-bot"]["metadata"]["namespace"] == "voicefleet-bots"
    bound = {subject["name"] for reg in k8s.registrations if reg.type.endswith("RoleBinding")
             for subject in unwrap(reg.inputs)["subjects"]}
    assert "voicefleet-bot" not in bound


def test_the_dispatcher_waits_for_its_grants(k8s: Run) -> None:
    deployment = k8s.one("kubernetes:apps/v1:Deployment")
    bindings = {r.urn for r in k8s.registrations if r.type.endswith(("/v1:RoleBinding", "/v1:ClusterRoleBinding"))}
    assert bindings and bindings <= set(deployment.dependencies)


def claim_verbs() -> set[tuple[str, str]]:
    """(resource, verb) pairs the claims provider says its calls need (sandbox.py CLAIM_VERBS, the words a
    refusal names): "create, get, list, watch and delete sandboxclaims, get sandboxwarmpools, …"."""
    groups = re.findall(r"((?:[a-z]+(?:, | and ))*[a-z]+) ([a-z/]+)(?:, |$)", CLAIM_VERBS)
    assert ", ".join(f"{verbs} {resource}" for verbs, resource in groups) == CLAIM_VERBS  # every word read
    return {(resource, verb) for verbs, resource in groups for verb in re.split(r", | and ", verbs)}


def test_the_agent_sandbox_role_grants_exactly_the_claims_verbs_and_no_pod_writes(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer="ci@example.com")
    kubernetes_validate.validate(unwrap(run.one("kubernetes:rbac.authorization.k8s.io/v1:Role").inputs),
                                 KUBE_VERSION, strict=True)
    granted = rules(run, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    # The claims' verbs, and `list` on the pools: the releases' pools are found by label (release_pools.py).
    assert {(resource, verb) for rule in granted for resource in rule["resources"] for verb in rule["verbs"]} == \
        claim_verbs() | {(POOL_VERBS.split()[1], POOL_VERBS.split()[0])}
    groups = {resource: rule["apiGroups"] for rule in granted for resource in rule["resources"]}
    extensions = ["extensions.agents.x-k8s.io"]
    assert groups == {"sandboxclaims": extensions, "sandboxwarmpools": extensions, "sandboxwarmpools/scale": extensions,
                      "sandboxtemplates": extensions, "pods": [""], "sandboxes": ["agents.x-k8s.io"]}
    assert not {"create", "patch", "delete"} & {verb for rule in granted if rule["resources"] == ["pods"]
                                                for verb in rule["verbs"]}
    # The same Role object as the pods mode's (an update in place when the mode changes), the same one grant.
    assert run.one("kubernetes:rbac.authorization.k8s.io/v1:Role").urn == \
        k8s_stack().one("kubernetes:rbac.authorization.k8s.io/v1:Role").urn
    assert rules(run, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]
