"""The dispatcher's RBAC is exactly what the pods provider calls, and nothing cluster-wide but TokenReviews."""

from __future__ import annotations

import re

from dispatcher.machines.k8s import api
from stacks.tools.mocks import Run, unwrap
from tests.infra.helpers import ROOT

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
    bound = {subject["name"] for reg in k8s.registrations if "Binding" in reg.type
             for subject in unwrap(reg.inputs)["subjects"]}
    assert "voicefleet-bot" not in bound


def test_the_dispatcher_waits_for_its_grants(k8s: Run) -> None:
    deployment = k8s.one("kubernetes:apps/v1:Deployment")
    bindings = {r.urn for r in k8s.registrations if r.type.endswith(("/v1:RoleBinding", "/v1:ClusterRoleBinding"))}
    assert bindings and bindings <= set(deployment.dependencies)
