"""Kubernetes in the `agent-sandbox` mode against the fake API server with agent-sandbox's extensions and
their controller (tests/fakes/k8s_sandbox.py, which validates every claim against the CRD's schema): a
start's SandboxClaim adopting a warm Sandbox or creating one cold, a replayed start finding its claim,
the lifecycle that deletes a finished session's Sandbox, stop, the pool's scale subresource, the claimed
pod's identity, quota and RBAC refusals, and the served-version check at start."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError, MachineState, WaitTimeout
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.machines.k8s.served import cluster_problems
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.test_k8s import spec
from tests.fakes.k8s import EVICTED, NAMESPACE, TOKEN
from tests.fakes.k8s_sandbox import CORE_GROUP, GROUP, POOL, FakeAgentSandbox, pod_metadata_problem

REPO = Path(__file__).resolve().parents[3]
CHANNEL_URL = "wss://d.example/bots/channel"


def env(fake: FakeAgentSandbox, **extra: str) -> dict[str, str]:
    return {**fake.env, "K8S_RETRY_DEADLINE_SECONDS": "3", "BOT_CHANNEL_URL": CHANNEL_URL, **extra}


def add_pool(fake: FakeAgentSandbox, replicas: int, name: str = POOL) -> None:
    """The pool and its template, whose pod is the one the `pods` mode would create (its labels too)."""
    settings = K8sSettings.from_env(env(fake))
    template = pod_body(settings, "template", image=settings.image, env={"BOT_CHANNEL_URL": CHANNEL_URL},
                        labels={}, annotations={}, deadline_seconds=3600)
    fake.add_pool(name, replicas, template["spec"], template["metadata"]["labels"])


def claims_finished(fake: FakeAgentSandbox, name: str) -> bool:
    conditions = ((fake.claims.get(name) or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Finished" and c["status"] == "True" for c in conditions)


async def warm_running(fake: FakeAgentSandbox, count: int) -> list[str]:
    """Wait for `count` warm Sandboxes, then run their pods (the kubelet's part: no launcher here)."""
    assert await fake.eventually(lambda: len(fake.warm(POOL)) == count, timeout=20)
    for name in fake.warm(POOL):
        fake.set_phase(name, "Running")
    return fake.warm(POOL)


@pytest.fixture
async def claims(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[SandboxClaims]:
    machines = SandboxClaims.from_env(env(fake_k8s_sandbox))
    yield machines
    await machines.aclose()


async def test_a_start_claims_a_warm_sandbox_whose_lifecycle_deletes_it_and_the_pool_refills(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    s = spec()  # the default release: K8S_WARM_POOL, which carries no release label
    await claims.launch(s)
    [create] = fake.calls_to("POST", "/sandboxclaims")
    assert create.query == {"fieldValidation": "Strict"}  # an unknown field is refused, never dropped
    body = create.json()
    assert body["metadata"]["name"] == f"vf-{s.session_id}" and body["spec"]["warmPoolRef"] == {"name": POOL}
    lifecycle = body["spec"]["lifecycle"]
    assert lifecycle["shutdownPolicy"] == "DeleteForeground" and lifecycle["ttlSecondsAfterFinished"] == 90
    assert abs(time.mktime(time.strptime(lifecycle["shutdownTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
               - (time.time() + 660)) < 120  # the session's cap and the slack, the hard end
    machine = await claims.wait_started(s.session_id, timeout=20)
    assert machine.state is MachineState.STARTED and machine.machine_id == warm and machine.release == "default"
    pod = fake.pods[warm]["metadata"]
    # The session's id alone, for whoever reads the pod: no launch value, and never a credential, even one
    # the start was given (its bot takes the session over the channel on its pod's identity alone).
    assert pod["annotations"] == body["spec"]["additionalPodMetadata"]["annotations"] == {
        "voicefleet.io/session": s.session_id}
    assert "session-credential" not in json.dumps([body, fake.pods[warm], fake.claims[f"vf-{s.session_id}"]])
    assert pod["labels"]["agents.x-k8s.io/launch-type"] == "warm"
    assert pod["labels"]["voicefleet.io/app"] == "bot"  # the template's label, which the NetworkPolicies select
    assert await fake.eventually(lambda: len(fake.warm(POOL)) == 1 and warm not in fake.warm(POOL), timeout=20)
    assert [m.session_id for m in await claims.list()] == [s.session_id]

    fake.set_phase(warm, "Succeeded", 0)  # the bot exits with its session: no dispatcher call
    assert await fake.eventually(lambda: claims_finished(fake, f"vf-{s.session_id}"), timeout=20)
    assert warm in fake.pods  # kept, terminal, while the claim tells how the session ended
    finished = fake.clock()
    fake.clock = lambda: finished + 91  # past `ttlSecondsAfterFinished`: the controller deletes it all
    assert await fake.eventually(lambda: f"vf-{s.session_id}" not in fake.claims and warm not in fake.pods,
                                 timeout=20)
    assert await claims.status(s.session_id) is None


async def test_with_no_warm_sandbox_the_claim_starts_one_cold(claims: SandboxClaims,
                                                              fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    s = spec()
    result = await claims.launch(s)
    assert result.created and result.machine.state is MachineState.STARTING
    with pytest.raises(WaitTimeout):  # its pod is not running yet
        await claims.wait_started(s.session_id, timeout=0.5)
    name = f"vf-{s.session_id}"
    assert await fake.eventually(lambda: name in fake.pods, timeout=20)  # a cold Sandbox named after the claim
    assert fake.pods[name]["metadata"]["labels"]["agents.x-k8s.io/launch-type"] == "cold"
    fake.set_phase(name, "Running")
    machine = await claims.wait_started(s.session_id, timeout=20)
    assert machine.state is MachineState.STARTED and machine.machine_id == name
    fake.set_phase(name, "Failed", 3)
    assert await fake.eventually(lambda: claims_finished(fake, name), timeout=20)
    finished = fake.clock()
    fake.clock = lambda: finished + 91
    assert await fake.eventually(lambda: name not in fake.claims, timeout=20)  # a failed bot's claim goes too


async def test_an_evicted_claims_pod_reads_the_kubelets_reason_which_its_stop_keeps(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """The claim's `Finished` says only `PodFailed`: the pod, kept while the claim is, says why (the
    kubelet's reason, not its killed bot's 137); the reaper's stop keeps it once the claim is gone."""
    fake, s = fake_k8s_sandbox, spec()
    add_pool(fake, 0)
    await claims.launch(s)
    name = f"vf-{s.session_id}"
    assert await fake.eventually(lambda: name in fake.pods, timeout=20)
    fake.set_phase(name, "Running")
    fake.evict(name)
    assert await fake.eventually(lambda: claims_finished(fake, name), timeout=20)
    machine = await claims.status(s.session_id)
    assert machine is not None and machine.state is MachineState.FAILED and machine.detail == f"Evicted: {EVICTED}"
    assert [m.state for m in await claims.list()] == [MachineState.FAILED]  # what the reaper lists, then stops
    assert await claims.stop(s.session_id)
    assert await fake.eventually(lambda: name not in fake.claims and name not in fake.pods, timeout=20)
    assert await claims.status(s.session_id) == machine


async def test_a_replayed_start_finds_its_claim_and_a_claim_on_another_pool_is_a_conflict(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    s = spec()
    first = await claims.launch(s)
    again = await claims.launch(s)
    assert first.created and not again.created and again.machine.session_id == s.session_id
    assert len(fake.calls_to("POST", "/sandboxclaims")) == 2 and list(fake.claims) == [f"vf-{s.session_id}"]

    other = SandboxClaims.from_env(env(fake, K8S_WARM_POOL="another-pool"))
    try:
        with pytest.raises(MachinesError) as refused:
            await other.launch(s)
    finally:
        await other.aclose()
    assert refused.value.reason == "k8s_conflict" and "voicefleet-bot" in refused.value.message


async def test_stop_deletes_the_claim_in_the_foreground_and_its_pod_after_it(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    s = spec()
    await claims.launch(s)
    await claims.wait_started(s.session_id, timeout=20)
    assert await claims.stop(s.session_id)
    [delete] = fake.calls_to("DELETE", "/sandboxclaims/")
    assert delete.json()["propagationPolicy"] == "Foreground"
    assert await fake.eventually(lambda: f"vf-{s.session_id}" not in fake.claims and warm not in fake.pods,
                                 timeout=20)
    assert not await claims.stop(s.session_id)  # gone: nothing to stop


async def test_the_pools_size_is_set_through_its_scale_subresource(claims: SandboxClaims,
                                                                   fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    await claims.scale_pool("default", 3)
    [patch] = fake.calls_to("PATCH", "/scale")
    assert patch.path.endswith(f"/sandboxwarmpools/{POOL}/scale")
    assert patch.headers["content-type"] == "application/merge-patch+json" and patch.json() == {"spec": {"replicas": 3}}
    assert await claims.pool_size("default") == 3
    await claims.scale_pool("default", 1)
    assert await claims.pool_size("default") == 1 and len(fake.warm(POOL)) == 1
    fake.fail(503, method="PATCH", path_suffix="/scale", times=2)
    with pytest.raises(MachinesError):
        await claims.scale_pool("default", 2)  # one try: its caller's lease bounds when a write may land
    assert len(fake.calls_to("PATCH", "/scale")) == 3 and await claims.pool_size("default") == 1
    fake.reset_knobs()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        negative = await client.patch(f"{fake.url}/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxwarmpools/"
                                      f"{POOL}/scale", content=b'{"spec":{"replicas":-1}}',
                                      headers={"Content-Type": "application/merge-patch+json"})
    assert negative.status_code == 422


async def test_the_claims_taking_from_the_pool_are_the_recent_unbound_ones(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    add_pool(fake_k8s_sandbox, 0)  # the claim goes cold, and no kubelet here runs its pod: not bound
    session = spec()
    await claims.launch(session)
    assert await claims.pool_taking("default", 30) == 1
    assert await claims.pool_taking("default", 0) == 0  # older than that: cold or stuck, no pool Sandbox's
    await claims.stop(session.session_id)
    assert await claims.pool_taking("default", 30) == 0


async def test_at_start_the_pools_size_is_read_and_reported_and_nothing_is_written(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    """The size is the planner's to write (dispatcher/reserve/pool_sizing.py), never the start-up check's."""
    fake = fake_k8s_sandbox
    add_pool(fake, 2)
    await warm_running(fake, 2)
    with caplog.at_level(logging.INFO, logger="dispatcher.machines.k8s"):
        await claims.settle()
    assert not fake.calls_to("PATCH", "/scale") and fake.warm_pools[POOL]["spec"]["replicas"] == 2
    assert len(fake.warm(POOL)) == 2
    [line] = [r.getMessage() for r in caplog.records]
    assert f"sandboxwarmpool {POOL} keeps 2 Sandbox(es) warm" in line and "the reserve's planner sizes it" in line


async def test_reading_the_pool_at_start_warns_of_a_missing_pool_or_a_refusal_and_never_raises(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    with caplog.at_level(logging.WARNING, logger="dispatcher.machines.k8s"):
        await claims.settle()  # no pool at all
        add_pool(fake, 1)
        fake.fail(403, method="GET", path_suffix="/scale", body={
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": "cannot get resource sandboxwarmpools/scale"})
        await claims.settle()
    missing, refused = (r.getMessage() for r in caplog.records)
    assert "no such SandboxWarmPool" in missing and "WarmPoolNotFound" in missing
    assert "could not be read" in refused and "get and patch sandboxwarmpools/scale" in refused
    assert fake.warm_pools[POOL]["spec"]["replicas"] == 1


async def test_the_fake_refuses_what_the_crd_schema_refuses_and_retain_keeps_an_expired_claim(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """No more lenient than the API server: an unknown field, a missing required one, a wrong enum;
    and the schema's default policy, Retain, which deletes the Sandbox but keeps the claim."""
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    url = f"{fake.url}/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"

    def claim(name: str, **spec_: object) -> dict[str, object]:
        return {"apiVersion": f"{GROUP}/v1beta1", "kind": "SandboxClaim", "metadata": {"name": name},
                "spec": {"warmPoolRef": {"name": POOL}, **spec_}}

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        strict = {"fieldValidation": "Strict"}
        unknown = await client.post(url, params=strict, json=claim("a", sandboxTemplateRef={"name": "t"}))
        warned = await client.post(url, json=claim("b", sandboxTemplateRef={"name": "t"}))
        required = await client.post(url, params=strict, json={**claim("c"), "spec": {}})
        policy = await client.post(url, params=strict, json=claim("d", lifecycle={"shutdownPolicy": "Keep"}))
        retained = await client.post(url, params=strict, json=claim("e", lifecycle={"ttlSecondsAfterFinished": 0}))
        alpha_only = await client.get(f"{fake.url}/apis/{GROUP}/v1/namespaces/{NAMESPACE}/sandboxclaims")
    assert (unknown.status_code, unknown.json()["reason"]) == (400, "BadRequest")
    assert 'unknown field "spec.sandboxTemplateRef"' in unknown.json()["message"]  # v1beta1 removed it
    assert warned.status_code == 201 and "sandboxTemplateRef" not in warned.json()["spec"] and warned.headers["warning"]
    assert required.status_code == 422 and policy.status_code == 422 and alpha_only.status_code == 404
    assert retained.status_code == 201 and retained.json()["spec"]["lifecycle"]["shutdownPolicy"] == "Retain"
    assert await fake.eventually(lambda: "e" in fake.pods, timeout=20)
    fake.set_phase("e", "Succeeded", 0)
    assert await fake.eventually(lambda: "e" not in fake.pods, timeout=20)
    reasons = {c["type"]: c["reason"] for c in fake.claims["e"]["status"]["conditions"]}
    assert reasons["Ready"] == "ClaimExpired"  # the leak a dispatcher must not leave: hence DeleteForeground


async def test_the_controller_refuses_pod_labels_outside_its_allowlist_and_a_start_sends_none(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """agent-sandbox's `validateAdditionalPodMetadata`: a pod label's domain must be in the controller's
    allowlist (default `sandbox.users.io`), an annotation must not be of a Kubernetes system domain."""
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    url = f"{fake.url}/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"

    def claim(name: str, **extra: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": f"{GROUP}/v1beta1", "kind": "SandboxClaim", "metadata": {"name": name},
                "spec": {"warmPoolRef": {"name": POOL}, "additionalPodMetadata": extra}}

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for each in (claim("ours", labels={"voicefleet.io/session": "s"}), claim("bare", labels={"session": "s"}),
                     claim("system", annotations={"kubernetes.io/x": "1"}),
                     claim("allowed", labels={"voicefleet.sandbox.users.io/session": "s"},
                           annotations={"voicefleet.io/session": "s",
                                        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"})):
            assert (await client.post(url, params={"fieldValidation": "Strict"}, json=each)).status_code == 201

    def ready(name: str) -> dict[str, str]:
        return next((c for c in fake.claims[name]["status"].get("conditions") or [] if c["type"] == "Ready"), {})

    assert await fake.eventually(lambda: all(ready(n) for n in ("ours", "bare", "system", "allowed")), timeout=20)
    assert ready("ours")["reason"] == "InvalidMetadata" and ready("ours")["message"] == (
        'invalid additionalPodMetadata: failed to validate label "voicefleet.io/session": '
        'label domain "voicefleet.io" is not in the allowlist')
    assert ready("bare")["reason"] == "InvalidMetadata" and "must have a domain prefix" in ready("bare")["message"]
    assert ready("system")["reason"] == "InvalidMetadata" and "restricted system domain" in ready("system")["message"]
    assert ready("allowed")["reason"] != "InvalidMetadata" and "allowed" in fake.pods
    fake.allowed_label_domains = ("voicefleet.io",)  # the operator's allowlist replaces the default
    assert allows(fake, {"a.voicefleet.io/b": "c"}) and not allows(fake, {"sandbox.users.io/x": "y"})
    fake.allowed_label_domains = ()

    s = spec()
    await claims.launch(s)  # what the dispatcher sends passes the default allowlist
    name = f"vf-{s.session_id}"
    assert await fake.eventually(lambda: name in fake.pods, timeout=20)
    assert "labels" not in fake.claims[name]["spec"]["additionalPodMetadata"]
    assert fake.pods[name]["metadata"]["annotations"]["voicefleet.io/session"] == s.session_id


def allows(fake: FakeAgentSandbox, labels: dict[str, str]) -> bool:
    return pod_metadata_problem({"labels": labels}, fake.allowed_label_domains) is None


async def test_a_claim_past_the_namespaces_quota_is_at_capacity(claims: SandboxClaims,
                                                                fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake_k8s_sandbox.claim_quota = 0
    with pytest.raises(MachinesError) as refused:
        await claims.launch(spec())
    assert refused.value.reason == "k8s_capacity" and refused.value.retry_after is not None
    assert "exceeded quota" in refused.value.message and fake_k8s_sandbox.claims == {}
    assert refused.value.public_message == (  # the quota hit, not the pods'
        "the cluster's bot namespace is at its quota of sandboxclaims; try again later")


async def test_a_credential_without_rights_is_unauthorized_naming_the_rbac_verbs(
        fake_k8s_sandbox: FakeAgentSandbox, tmp_path: Path) -> None:
    wrong = tmp_path / "token"
    wrong.write_text("someone-elses-token\n")
    machines = SandboxClaims.from_env(env(fake_k8s_sandbox, K8S_TOKEN_FILE=str(wrong)))
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert refused.value.reason == "k8s_unauthorized"
    assert "create, get, list, watch and delete sandboxclaims" in refused.value.message
    assert "sandboxwarmpools/scale" in refused.value.message


async def test_a_hello_with_a_credential_is_refused_for_no_bot_of_the_mode_holds_one(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """Even a credential the deployment's secret signed for the session (an older dispatcher's, read from an
    older claim), from the pod its claim holds with that pod's own token: only the identity admits here."""
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    await warm_running(fake, 1)
    s = spec()
    await claims.launch(s)
    held = (await claims.wait_started(s.session_id, timeout=20)).machine_id
    hello = Hello(machine_id=held, capabilities=("daily",), session_id=s.session_id, identity=fake.token_of(held))
    for kind, subject in (("session", s.session_id), ("idle", held)):
        refused = await claims.identity.refusal(BotGrant(kind, subject, int(time.time()) + 600), hello)
        assert refused is not None and "BOT_IDENTITY=k8s" in refused
    granted = await claims.pool_identity.grant(hello)  # control: its identity alone admits it, as the session's
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("session", s.session_id)


async def test_the_cluster_must_serve_agent_sandboxs_v1beta1(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    assert await cluster_problems(env(fake)) == []
    fake.served[GROUP] = ("v1alpha1",)  # a managed add-on that lags upstream
    [old] = await cluster_problems(env(fake))
    assert "serves extensions.agents.x-k8s.io v1alpha1, not v1beta1" in old and "K8S_MODE=pods" in old
    fake.served[GROUP] = ("v1beta1",)
    del fake.served[CORE_GROUP]  # no agent-sandbox at all
    [missing] = await cluster_problems(env(fake))
    assert "does not serve agents.x-k8s.io" in missing and "sandbox-with-extensions.yaml" in missing
    calls = len(fake.calls)
    assert await cluster_problems({**env(fake), "K8S_MODE": "pods"}) == []
    assert [c.path.rsplit("/", 1)[-1] for c in fake.calls[calls:]] == ["tokenreviews"]  # no discovery


def test_the_dispatcher_refuses_to_start_on_a_cluster_serving_only_v1alpha1(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake_k8s_sandbox.served[GROUP] = ("v1alpha1",)
    settings = {**env(fake_k8s_sandbox), "DISPATCHER_API_KEYS": "k" * 32, "BOT_CHANNEL_TOKEN": "d" * 40,
                "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=tcp",
                "TURN_SHARED_SECRET": "t" * 32, "PORT": "0"}
    exited = subprocess.run([sys.executable, "-m", "dispatcher"], cwd=REPO, env={**os.environ, **settings},
                            capture_output=True, text=True, timeout=120)
    assert exited.returncode == 2, exited.stderr
    [line] = exited.stderr.strip().splitlines()  # one line, before anything is built
    assert line.startswith("dispatcher: configuration error: K8S_MODE=agent-sandbox") and "v1alpha1" in line


def test_the_mode_and_pool_are_checked_at_start(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    from dispatcher.factory import build_machines
    from dispatcher.settings import Settings
    from dispatcher.store.local import LocalCoordination

    with pytest.raises(SettingsError, match="K8S_MODE='sandbox' is not one of pods, agent-sandbox"):
        K8sSettings.from_env({**fake_k8s_sandbox.env, "K8S_MODE": "sandbox"})
    with pytest.raises(SettingsError, match="K8S_WARM_POOL"):
        K8sSettings.from_env({**fake_k8s_sandbox.env, "K8S_WARM_POOL": "Not_A_Name"})
    assert K8sSettings.from_env({**fake_k8s_sandbox.env, "K8S_MODE": ""}).mode == "pods"  # the default
    built = build_machines(Settings(machines="k8s", transports=("webrtc",)), env(fake_k8s_sandbox),
                           LocalCoordination())
    assert isinstance(built, SandboxClaims)  # the pool's controller keeps the warm bots: no reserve of pods


def test_the_mode_offers_one_web_transport_the_pools_template_boots(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """Every bot is a pod of one template booting one transport: a second one's sessions would adopt
    bots that cannot serve them, so the dispatcher stops at start saying why, in one line."""
    from dispatcher.factory import configuration_problems

    base = {**env(fake_k8s_sandbox), "MACHINES": "k8s", "BOT_CHANNEL_TOKEN": "c" * 40}
    both = [p for p in configuration_problems({**base, "TRANSPORTS": "daily,webrtc"}) if "TRANSPORTS=" in p]
    assert len(both) == 1 and "\n" not in both[0]
    assert both[0].startswith("TRANSPORTS=daily,webrtc with K8S_MODE=agent-sandbox") and "BOT_TRANSPORT" in both[0]
    assert "set TRANSPORTS=webrtc with a TURN relay (TURN_URLS), else TRANSPORTS=daily" in both[0]
    for one in ("webrtc", "daily", ""):
        assert K8sSettings.from_env({**base, "TRANSPORTS": one}).pool_transport == (one or "daily")
    assert K8sSettings.from_env({**base, "TRANSPORTS": "daily,webrtc", "K8S_MODE": "pods"}).mode == "pods"


def test_either_mode_needs_the_bot_channel(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """Their bots get no session value at launch: without a channel no session could reach one."""
    from dispatcher.factory import configuration_problems

    base = {**env(fake_k8s_sandbox), "MACHINES": "k8s", "TRANSPORTS": "webrtc"}
    needs = [p for p in configuration_problems(base) if "K8S_MODE=agent-sandbox needs the bot channel" in p]
    assert needs and "BOT_CHANNEL_TOKEN" in needs[0]
    pods = [p for p in configuration_problems({**base, "K8S_MODE": "pods"}) if "needs the bot channel" in p]
    assert pods and pods[0].startswith("MACHINES=k8s needs the bot channel")  # a session pod holds no secret either
    for fine in ({**base, "BOT_CHANNEL_TOKEN": "c" * 40}, {**base, "K8S_MODE": "pods", "BOT_CHANNEL_TOKEN": "c" * 40}):
        assert not [p for p in configuration_problems(fine) if "needs the bot channel" in p]
