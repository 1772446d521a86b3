"""The Kubernetes fakes refuse what a kube-apiserver refuses, beyond its OpenAPI schema: the semantic pod-spec
checks of `ValidatePodSpec` (kubernetes/kubernetes pkg/apis/core/validation/validation.go), ObjectMeta decoded
strictly on a custom resource, DeleteOptions validated and its preconditions checked before anything is
deleted, no strategic merge patch on a custom resource's `/scale`, a stale `resourceVersion` in a patch,
an expired projected token. The dispatcher's own bodies pass them all (every other k8s test sends them)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dispatcher.machines.k8s.claims import claim_body
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.settings import K8sSettings
from tests.dispatcher.machines.test_k8s_sandbox import add_pool
from tests.fakes.k8s import NAMESPACE, TOKEN, FakeKubernetes
from tests.fakes.k8s_pod_spec import quantity
from tests.fakes.k8s_sandbox import CORE_GROUP, GROUP, POOL, FakeAgentSandbox

PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
CLAIMS = f"/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"
STRICT = {"fieldValidation": "Strict"}


@pytest.fixture
async def client(fake_k8s: FakeKubernetes) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_k8s.url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=60) as http:
        yield http


def bot_pod(fake: FakeKubernetes, name: str) -> dict[str, Any]:
    """The pod the dispatcher sends (k8s/pods.py), which the API server admits."""
    settings = K8sSettings.from_env(fake.env)
    return pod_body(settings, name, image=settings.image, env={}, labels={}, annotations={}, deadline_seconds=600)


def refusal(answer: httpx.Response) -> tuple[int, str, str]:
    body = answer.json()
    return answer.status_code, body["reason"], body["message"]


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda s: s["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"].update(expirationSeconds=300),
     "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", "less than 10 minutes"),
    (lambda s: s["containers"][0]["volumeMounts"][0].update(name="renamed"),
     "spec.containers[0].volumeMounts[0].name", 'Not found: "renamed"'),
    (lambda s: s["containers"][0]["resources"]["requests"].update(cpu="1500m"),
     "spec.containers[0].resources.requests", "must be less than or equal to cpu limit of"),
    (lambda s: s["containers"][0]["resources"]["requests"].update(memory="2Gi"),
     "spec.containers[0].resources.requests", "must be less than or equal to memory limit of"),
    (lambda s: s["volumes"].append(copy.deepcopy(s["volumes"][0])), "spec.volumes[1].name", "Duplicate value"),
])
async def test_a_pod_the_api_servers_pod_spec_checks_refuse_is_422_and_not_created(
        fake_k8s: FakeKubernetes, client: httpx.AsyncClient, change: Any, field: str, words: str) -> None:
    assert (await client.post(PODS, params=STRICT, json=bot_pod(fake_k8s, "fine"))).status_code == 201
    pod = bot_pod(fake_k8s, "refused")
    change(pod["spec"])
    code, reason, message = refusal(await client.post(PODS, params=STRICT, json=pod))
    assert (code, reason) == (422, "Invalid") and f"{field}: " in message and words in message
    assert "refused" not in fake_k8s.pods


def test_quantities_compare_as_the_api_server_parses_them() -> None:
    assert quantity("1") == quantity("1000m") and quantity("1Gi") == 1024 ** 3 and quantity("1e3") == quantity("1k")
    assert quantity("512Mi") < quantity("1Gi") < quantity("2G") and quantity("0.5") == quantity("500m")
    with pytest.raises(ValueError, match="regular expression"):
        quantity("one")


async def test_an_unknown_metadata_field_is_refused_under_strict_for_pods_and_claims(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    pod = bot_pod(fake, "meta")
    pod["metadata"]["foo"] = "bar"
    claim = claim_body("vf-meta", pool=POOL, session_id="meta", release="r", notes={}, shutdown_after_seconds=60)
    claim["metadata"]["foo"] = "bar"
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        pod_strict = await http.post(PODS, params=STRICT, json=pod)
        claim_strict = await http.post(CLAIMS, params=STRICT, json=claim)
        claim_warned = await http.post(CLAIMS, json=claim)
    assert refusal(pod_strict)[:2] == (400, "BadRequest")
    code, reason, message = refusal(claim_strict)
    assert (code, reason) == (400, "BadRequest") and 'unknown field "metadata.foo"' in message
    assert claim_warned.status_code == 201 and "foo" not in claim_warned.json()["metadata"]  # pruned, as warned
    assert "metadata.foo" in claim_warned.headers["warning"] and "foo" not in fake.claims["vf-meta"]["metadata"]


async def test_a_pod_delete_with_bad_options_deletes_nothing(fake_k8s: FakeKubernetes,
                                                             client: httpx.AsyncClient) -> None:
    created = (await client.post(PODS, params=STRICT, json=bot_pod(fake_k8s, "kept"))).json()
    uid, version = created["metadata"]["uid"], created["metadata"]["resourceVersion"]

    async def delete(**options: object) -> httpx.Response:
        return await client.request("DELETE", f"{PODS}/kept", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                                     **options})

    bogus = await delete(propagationPolicy="Bogus")
    both = await delete(propagationPolicy="Background", orphanDependents=True)
    unknown = await delete(gracePeriod=0)
    wrong_uid = await delete(preconditions={"uid": "not-its-uid"})
    stale = await delete(preconditions={"resourceVersion": "1"})
    by_query = await client.delete(f"{PODS}/kept", params={"propagationPolicy": "Bogus"})
    assert refusal(bogus)[:2] == (422, "Invalid") and 'Unsupported value: "Bogus"' in refusal(bogus)[2]
    assert refusal(both)[:2] == (422, "Invalid") and refusal(by_query)[:2] == (422, "Invalid")
    assert refusal(unknown)[:2] == (400, "BadRequest") and 'unknown field "gracePeriod"' in refusal(unknown)[2]
    assert refusal(wrong_uid)[:2] == (409, "Conflict") and "UID in precondition: not-its-uid" in refusal(wrong_uid)[2]
    assert refusal(stale)[:2] == (409, "Conflict") and "ResourceVersion in precondition: 1" in refusal(stale)[2]
    assert "kept" in fake_k8s.pods
    matching = await delete(propagationPolicy="Background", preconditions={"uid": uid, "resourceVersion": version})
    assert matching.status_code == 200 and "kept" not in fake_k8s.pods


async def test_a_merge_patch_with_a_stale_resource_version_is_a_conflict(fake_k8s: FakeKubernetes,
                                                                         client: httpx.AsyncClient) -> None:
    created = (await client.post(PODS, params=STRICT, json=bot_pod(fake_k8s, "patched"))).json()
    version = created["metadata"]["resourceVersion"]
    fake_k8s.set_phase("patched", "Running")  # the kubelet's write: the version moves on
    merge = {"Content-Type": "application/merge-patch+json"}

    def labelled(value: str, rv: str | None) -> bytes:
        return httpx.Request("PATCH", "/", json={"metadata": {"labels": {"x": value}, "resourceVersion": rv}}).content

    stale = await client.patch(f"{PODS}/patched", content=labelled("stale", version), headers=merge)
    current = fake_k8s.pods["patched"]["metadata"]["resourceVersion"]
    fresh = await client.patch(f"{PODS}/patched", content=labelled("fresh", current), headers=merge)
    unconditional = await client.patch(f"{PODS}/patched", content=labelled("any", None), headers=merge)
    assert refusal(stale)[:2] == (409, "Conflict") and "the object has been modified" in refusal(stale)[2]
    assert fresh.status_code == 200 and unconditional.status_code == 200
    assert fake_k8s.pods["patched"]["metadata"]["labels"]["x"] == "any"


async def test_an_expired_projected_token_is_not_authenticated(fake_k8s: FakeKubernetes,
                                                               client: httpx.AsyncClient) -> None:
    settings = K8sSettings.from_env(fake_k8s.env)
    await client.post(PODS, params=STRICT, json=bot_pod(fake_k8s, "tokened"))
    token = fake_k8s.token_of("tokened")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": [settings.token_audience]}}
    fresh = (await client.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)).json()["status"]
    issued = fake_k8s.clock()
    fake_k8s.clock = lambda: issued + 3601  # past the pod's `expirationSeconds` (3600)
    expired = (await client.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)).json()["status"]
    assert fresh["authenticated"] is True
    assert expired["authenticated"] is False and expired["error"] == "service account token has expired"


async def test_a_claim_delete_with_an_unknown_policy_deletes_nothing_and_scale_refuses_smp(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    claim = claim_body("vf-del", pool=POOL, session_id="del", release="r", notes={}, shutdown_after_seconds=60)
    scale = f"/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxwarmpools/{POOL}/scale"
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        assert (await http.post(CLAIMS, params=STRICT, json=claim)).status_code == 201
        assert await fake.eventually(lambda: "vf-del" in fake.pods, timeout=20)
        bogus = await http.request("DELETE", f"{CLAIMS}/vf-del", json={"propagationPolicy": "Forground"})
        unknown = await http.request("DELETE", f"{CLAIMS}/vf-del", json={"propagation": "Foreground"})
        wrong_uid = await http.request("DELETE", f"{CLAIMS}/vf-del", json={"preconditions": {"uid": "x"}})
        smp = await http.patch(scale, content=b'{"spec": {"replicas": 2}}',
                               headers={"Content-Type": "application/strategic-merge-patch+json"})
        merge = await http.patch(scale, content=b'{"spec": {"replicas": 0}}',
                                 headers={"Content-Type": "application/merge-patch+json"})
        foreground = await http.request("DELETE", f"{CLAIMS}/vf-del", json={"propagationPolicy": "Foreground"})
    assert refusal(bogus)[:2] == (422, "Invalid") and refusal(unknown)[:2] == (400, "BadRequest")
    assert refusal(wrong_uid)[:2] == (409, "Conflict")
    assert refusal(smp)[:2] == (415, "UnsupportedMediaType") and merge.status_code == 200
    assert foreground.status_code == 200  # 202 is only `orphanDependents: false`'s
    assert await fake.eventually(lambda: "vf-del" not in fake.claims and "vf-del" not in fake.pods, timeout=20)


async def test_a_sandbox_whose_pod_template_fails_the_pod_spec_checks_is_422(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    spec = bot_pod(fake, "t")["spec"]
    spec["containers"][0]["volumeMounts"][0]["name"] = "missing"
    body = {"apiVersion": f"{CORE_GROUP}/v1beta1", "kind": "Sandbox", "metadata": {"name": "third-party"},
            "spec": {"podTemplate": {"spec": spec}}}
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        answer = await http.post(f"/apis/{CORE_GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxes", json=body)
    assert refusal(answer)[:2] == (422, "Invalid") and "volumeMounts[0].name: Not found" in refusal(answer)[2]
    assert "third-party" not in fake.sandboxes
    with pytest.raises(AssertionError, match="Not found"):
        fake.add_pool("broken", 0, spec)
