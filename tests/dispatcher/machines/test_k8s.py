"""Kubernetes (`pods` mode) against the fake API server (tests/fakes/k8s.py): what the contract does not
cover — the Pod's body (validated by the fake against the real v1 schema, strictly, under Pod Security
`restricted`), a ResourceQuota's refusal, a credential the API server refuses, a slow API server, the
reserve's idle pods and their claim by one JSON Patch (two replicas racing for one pod), the pod
binding of a bot's credential, and the settings a deployment gets wrong."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.contract import Hello
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import LaunchSpec, MachinesError, MachineState
from dispatcher.machines.k8s.api import quota_resources
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import K8sWarmMachines
from dispatcher.machines.k8s.served import cluster_problems
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.observability.metrics import Metrics
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalClaims
from tests.fakes.k8s import EVICTED, NAMESPACE, TOKEN, FakeKubernetes

RELEASE_IMAGE = "registry.example/voicefleet-bot@sha256:" + "1" * 64


def spec(**kw: object) -> LaunchSpec:
    values: dict[str, object] = {"session_id": secrets.token_hex(12), "body_digest": "d" * 32,
                                 "max_session_seconds": 600, "channel_token": "session-credential",
                                 "transport": "webrtc", **kw}
    return LaunchSpec(**values)  # type: ignore[arg-type]


def env(fake: FakeKubernetes, **extra: str) -> dict[str, str]:
    return {**fake.env, "K8S_RETRY_DEADLINE_SECONDS": "3", "BOT_CHANNEL_URL": "wss://d.example/bots/channel", **extra}


@pytest.fixture
async def k8s(fake_k8s: FakeKubernetes) -> AsyncIterator[K8sMachines]:
    machines = K8sMachines.from_env(env(fake_k8s))
    # As the dispatcher wires it with its bot channel (BOT_CHANNEL_TOKEN): session pods' bots dial on their identity.
    machines.watch_channels(BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=machines.identity))
    yield machines
    await machines.aclose()


def warm(fake: FakeKubernetes) -> K8sWarmMachines:
    return K8sWarmMachines.from_env(env(fake), transport="webrtc", max_idle_seconds=900, max_session_seconds=600)


async def test_a_session_is_one_bare_pod_under_pod_security_restricted(k8s: K8sMachines,
                                                                      fake_k8s: FakeKubernetes) -> None:
    s = spec(release="canary", image=RELEASE_IMAGE)
    result = await k8s.launch(s)
    [create] = fake_k8s.calls_to("POST", "/pods")
    assert create.query == {"fieldValidation": "Strict"}  # an unknown field is refused, never dropped
    pod = create.json()
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == f"vf-{s.session_id}" == result.machine.machine_id
    assert pod["metadata"]["labels"] == {"voicefleet.io/app": "bot", "voicefleet.io/state": "session",
                                         "voicefleet.io/session": s.session_id, "voicefleet.io/release": "canary"}
    spec_ = pod["spec"]
    assert spec_["restartPolicy"] == "Never" and spec_["activeDeadlineSeconds"] == 600 + 60
    assert spec_["automountServiceAccountToken"] is False
    [container] = spec_["containers"]
    assert container["image"] == RELEASE_IMAGE
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    [volume] = spec_["volumes"]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "wss://d.example/bots/channel"  # voicefleet's audience, not the API server's
    env_ = fake_k8s.envs[f"vf-{s.session_id}"]
    assert env_["VOICEFLEET_SESSION_ID"] == s.session_id and env_["BOT_IDENTITY"] == "k8s"
    # Nothing secret: not even the session's channel credential (its bot dials with its pod's token alone).
    assert "BOT_CHANNEL_TOKEN" not in env_ and "session-credential" not in json.dumps(fake_k8s.pods)
    assert "DAILY_TOKEN" not in env_ and "VOICEFLEET_BODY" not in env_  # the session's secrets go over the channel
    machine = await k8s.status(s.session_id)
    assert machine is not None and machine.release == "canary" and machine.transport == "webrtc"


async def test_the_runtime_class_and_service_account_are_set_when_configured(fake_k8s: FakeKubernetes) -> None:
    machines = K8sMachines.from_env(env(fake_k8s, K8S_RUNTIME_CLASS="gvisor", K8S_SERVICE_ACCOUNT="voicefleet-bot"))
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    pod = fake_k8s.calls_to("POST", "/pods")[0].json()
    assert pod["spec"]["runtimeClassName"] == "gvisor" and pod["spec"]["serviceAccountName"] == "voicefleet-bot"


async def test_the_fake_refuses_what_the_api_server_refuses(fake_k8s: FakeKubernetes) -> None:
    """The fake is no more lenient than the API server: an unknown field, a privileged pod, a bad label."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{fake_k8s.url}/api/v1/namespaces/{NAMESPACE}/pods"
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                  "seccompProfile": {"type": "RuntimeDefault"}}

    def pod(name: str, **container: object) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "bot", "image": "i", "securityContext": restricted, **container}]}}

    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        unknown = await client.post(url, params={"fieldValidation": "Strict"}, json=pod("a", imagePolicy="x"))
        privileged = await client.post(url, json=pod("b", securityContext={"privileged": True}))
        label = await client.post(url, json={**pod("c"), "metadata": {"name": "c", "labels": {"a": "-bad"}}})
        wrong_type = await client.post(url, json=pod("d", env="x"))
        ok = await client.post(url, json=pod("e"))
        again = await client.post(url, json=pod("e"))
        stranger = await client.get(url, headers={"Authorization": "Bearer nope"})
    assert (unknown.status_code, unknown.json()["reason"]) == (400, "BadRequest")
    assert "strict decoding error" in unknown.json()["message"]
    assert (privileged.status_code, privileged.json()["reason"]) == (403, "Forbidden")
    assert label.status_code == 422 and wrong_type.status_code == 422
    assert ok.status_code == 201 and (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    assert stranger.status_code == 401


async def test_a_create_past_the_namespaces_quota_is_at_capacity_with_the_way_out(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    fake_k8s.quota = 1
    await k8s.launch(spec())
    with pytest.raises(MachinesError) as refused:
        await k8s.launch(spec())
    assert refused.value.reason == "k8s_capacity" and refused.value.retry_after is not None
    assert "raise the quota" in refused.value.message and "exceeded quota" in refused.value.message
    assert refused.value.public_message == "the cluster's bot namespace is at its quota of pods; try again later"
    assert len(fake_k8s.calls_to("POST", "/pods")) == 2  # a quota is not retried at once


def test_a_quota_refusal_names_every_resource_it_ran_out_of() -> None:
    compute = ('pods "vf-a" is forbidden: exceeded quota: compute, requested: limits.cpu=2,requests.memory=1Gi, '
               "used: limits.cpu=4,requests.memory=3Gi, limited: limits.cpu=5,requests.memory=4Gi")
    assert quota_resources(compute) == ["limits.cpu", "requests.memory"]
    assert quota_resources("exceeded quota: q, requested: count/sandboxclaims.extensions.agents.x-k8s.io=1, "
                           "used: count/sandboxclaims.extensions.agents.x-k8s.io=3, limited: x=3") == ["sandboxclaims"]
    assert quota_resources("exceeded quota") == []


async def test_a_credential_the_api_server_refuses_is_a_configuration_error(fake_k8s: FakeKubernetes,
                                                                           tmp_path: Path) -> None:
    wrong = tmp_path / "token"
    wrong.write_text("someone-elses-token\n")
    machines = K8sMachines.from_env(env(fake_k8s, K8S_TOKEN_FILE=str(wrong)))
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert refused.value.reason == "k8s_unauthorized" and refused.value.retry_after is None
    assert "K8S_TOKEN_FILE" in refused.value.message and "someone-elses-token" not in refused.value.message


async def test_a_rotated_token_file_is_read_again(fake_k8s: FakeKubernetes, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("expired\n")
    machines = K8sMachines.from_env(env(fake_k8s, K8S_TOKEN_FILE=str(token)))
    try:
        with pytest.raises(MachinesError):
            await machines.status(secrets.token_hex(12))
        token.write_text(TOKEN + "\n")  # the kubelet rotated it
        os.utime(token, (1, 1))  # a new mtime even within the file system's resolution
        assert await machines.status(secrets.token_hex(12)) is None
    finally:
        await machines.aclose()


async def test_a_slow_api_server_is_waited_for_within_the_timeout_then_retried_and_one_pod_made(
        fake_k8s: FakeKubernetes) -> None:
    machines = K8sMachines.from_env(env(fake_k8s, K8S_TIMEOUT_SECONDS="1", K8S_RETRY_DEADLINE_SECONDS="20"))
    s = spec()
    hold = fake_k8s.hold(times=1, method="POST", path_suffix="/pods")  # the first create hangs
    try:
        result = await machines.launch(s)
        hold.release()  # the hung create lands after the retried one: 409, nothing more
    finally:
        await machines.aclose()
    assert result.machine.session_id == s.session_id
    assert hold.caught == 1 and len(fake_k8s.calls_to("POST", "/pods")) >= 2
    assert await fake_k8s.eventually(lambda: fake_k8s.in_flight() == 0, timeout=10)
    assert fake_k8s.created.count(f"vf-{s.session_id}") == 1


async def test_an_api_server_that_stays_slow_is_unavailable_with_a_retry_hint(fake_k8s: FakeKubernetes) -> None:
    machines = K8sMachines.from_env(env(fake_k8s, K8S_TIMEOUT_SECONDS="0.3", K8S_RETRY_DEADLINE_SECONDS="1"))
    hold = fake_k8s.hold(times=100, method="GET")
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.status(secrets.token_hex(12))
    finally:
        hold.release()
        await machines.aclose()
    assert refused.value.reason == "k8s_unavailable" and refused.value.retry_after is not None


async def test_an_idle_pod_is_labelled_idle_with_its_own_credential_and_no_session(fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-0a1b2c", "idle-credential", image=RELEASE_IMAGE, release="canary")
        [idle] = await machines.idle_machines()
    finally:
        await machines.aclose()
    assert idle.bot_id == "rsv-0a1b2c"
    pod = fake_k8s.pods["vf-idle-rsv-0a1b2c"]
    assert pod["metadata"]["labels"] == {"voicefleet.io/app": "bot", "voicefleet.io/state": "idle",
                                         "voicefleet.io/bot": "rsv-0a1b2c", "voicefleet.io/release": "canary"}
    assert pod["spec"]["activeDeadlineSeconds"] == 900 + 600
    env_ = fake_k8s.envs["vf-idle-rsv-0a1b2c"]
    assert env_["BOT_MACHINE_ID"] == "rsv-0a1b2c" and env_["BOT_CHANNEL_TOKEN"] == "idle-credential"
    assert env_["BOT_IMAGE_DIGEST"] == RELEASE_IMAGE and "VOICEFLEET_SESSION_ID" not in env_


async def test_two_replicas_racing_for_one_idle_pod_one_wins_and_the_other_moves_on(
        fake_k8s: FakeKubernetes) -> None:
    first, second = warm(fake_k8s), warm(fake_k8s)
    try:
        await first.launch_idle("rsv-race", "c")
        fake_k8s.set_phase("vf-idle-rsv-race", "Running")  # the kubelet's write: a new resourceVersion
        a, b = spec(), spec()
        results = await asyncio.gather(first.adopt("rsv-race", a), second.adopt("rsv-race", b),
                                       return_exceptions=True)
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, MachinesError)]
        assert len(won) == 1 and len(lost) == 1 and lost[0].reason == "reserve_bot_taken"
        winner = a if results[0] is won[0] else b
        labels = fake_k8s.pods["vf-idle-rsv-race"]["metadata"]["labels"]
        assert labels["voicefleet.io/state"] == "session" and labels["voicefleet.io/session"] == winner.session_id
        assert await first.idle_machines() == []  # claimed: no longer idle
        loser = b if winner is a else a
        assert await second.status(loser.session_id) is None  # the loser's session has no pod: it starts cold
        found = await second.status(winner.session_id)  # the other replica finds it by its label
        assert found is not None and found.machine_id == "vf-idle-rsv-race" and found.body_digest == "d" * 32
        assert found.state is MachineState.STARTED and winner.session_id in {m.session_id for m in await second.list()}
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_claim_adds_to_the_idle_pods_own_annotations_and_a_422_on_an_idle_pod_is_not_a_lost_race(
        fake_k8s: FakeKubernetes) -> None:
    """The API server stores no empty map (ObjectMeta `omitempty`): the claim's `add` under
    `/metadata/annotations` works only because the idle pod has an annotation of its own. A 422 while
    the pod is still idle (here a pod with none, as an older release created them: its `test` of the bot
    keys' mark fails first, so it is stale) is not another replica's claim."""
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-notes", "c")
        [create] = fake_k8s.calls_to("POST", "/pods")
        assert create.json()["metadata"]["annotations"]  # never an empty map
        result = await machines.adopt("rsv-notes", spec())
        assert result.claimed and fake_k8s.pods["vf-idle-rsv-notes"]["metadata"]["annotations"][
            "voicefleet.io/body-digest"] == "d" * 32
        bare = pod_body(machines.settings, "vf-idle-rsv-bare", image="img", env={}, annotations={},
                        labels={"voicefleet.io/state": "idle", "voicefleet.io/bot": "rsv-bare"}, deadline_seconds=60)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            stored = await client.post(f"{fake_k8s.url}/api/v1/namespaces/{NAMESPACE}/pods", json=bare)
        assert stored.status_code == 201 and "annotations" not in stored.json()["metadata"]  # dropped, as stored
        with pytest.raises(MachinesError) as refused:
            await machines.adopt("rsv-bare", spec())
    finally:
        await machines.aclose()
    assert refused.value.reason == "reserve_bot_stale"
    assert fake_k8s.pods["vf-idle-rsv-bare"]["metadata"]["labels"]["voicefleet.io/state"] == "idle"


async def test_the_reapers_stop_deletes_ended_session_pods_and_claimed_idle_pods_at_once(
        fake_k8s: FakeKubernetes) -> None:
    """A bare pod has no TTL: an ended session's pod (and a claimed idle pod), its spec holding the
    session's credential, is gone once the reaper's sweep stops it; a running one keeps its grace."""
    machines = warm(fake_k8s)
    try:
        ended, claimed, running = spec(), spec(), spec()
        for each in (ended, running):
            await machines.launch(each)
        await machines.launch_idle("rsv-ended", "c")
        await machines.adopt("rsv-ended", claimed)
        fake_k8s.set_phase(f"vf-{ended.session_id}", "Succeeded", 0)
        fake_k8s.set_phase("vf-idle-rsv-ended", "Failed", 3)
        fake_k8s.set_phase(f"vf-{running.session_id}", "Running")
        reaper = Reaper(machines, None, Metrics("memory"), max_session_seconds=600, settings=ReaperSettings())
        done = await reaper.sweep()
        assert done["ended_session"] == 2
        assert f"vf-{ended.session_id}" not in fake_k8s.pods and "vf-idle-rsv-ended" not in fake_k8s.pods
        assert {m.session_id for m in await machines.list()} == {running.session_id}
        assert [c.json()["gracePeriodSeconds"] for c in fake_k8s.calls_to("DELETE", "/pods/")] == [0, 0]
        assert await machines.stop(running.session_id)  # a running bot still gets its goodbye
        assert fake_k8s.calls_to("DELETE", "/pods/")[-1].json()["gracePeriodSeconds"] == 30
        gone = await machines.status(ended.session_id)  # how it ended outlives its pod, for GET /sessions/{id}
        assert gone is not None and gone.state.value == "ended"
        failed = await machines.status(claimed.session_id)
        assert failed is not None and failed.state.value == "failed" and "3" in (failed.detail or "")
    finally:
        await machines.aclose()


async def test_a_retried_claim_whose_first_answer_was_lost_is_this_sessions_claim(fake_k8s: FakeKubernetes) -> None:
    """The claim's PATCH is retried on a timeout or a 5xx: when the first one was applied, the retry's
    `test` fails with 422 on a pod that is this session's, which is a claim, not another replica's."""
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-lost", "c")
        ours, theirs = spec(), spec()
        first = await machines.adopt("rsv-lost", ours)
        again = await machines.adopt("rsv-lost", ours)  # the retry, as after a lost answer
        with pytest.raises(MachinesError) as taken:
            await machines.adopt("rsv-lost", theirs)
    finally:
        await machines.aclose()
    assert first.claimed and again.claimed and again.machine.machine_id == "vf-idle-rsv-lost"
    assert taken.value.reason == "reserve_bot_taken"


async def test_a_changed_resource_version_alone_is_not_a_lost_claim(fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-status", "c")
        before = fake_k8s.pods["vf-idle-rsv-status"]["metadata"]["resourceVersion"]
        fake_k8s.set_phase("vf-idle-rsv-status", "Running")  # status writes between read and claim
        fake_k8s.set_phase("vf-idle-rsv-status", "Running")
        assert fake_k8s.pods["vf-idle-rsv-status"]["metadata"]["resourceVersion"] != before
        result = await machines.adopt("rsv-status", spec())
    finally:
        await machines.aclose()
    assert result.claimed and result.machine.machine_id == "vf-idle-rsv-status"
    [patch] = fake_k8s.calls_to("PATCH", "/pods/")
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert [op["op"] for op in patch.json()][:2] == ["test", "test"]


async def test_a_gone_idle_pod_cannot_be_claimed_and_retiring_it_twice_is_quiet(fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-gone", "c")
        await machines.retire("rsv-gone")
        await machines.retire("rsv-gone")
        with pytest.raises(MachinesError) as refused:
            await machines.adopt("rsv-gone", spec())
    finally:
        await machines.aclose()
    assert refused.value.reason == "reserve_bot_gone" and "vf-idle-rsv-gone" not in fake_k8s.pods


async def test_an_idle_pod_that_failed_is_listed_for_the_sweep_with_its_exit_code(fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-crash", "c")
        fake_k8s.set_phase("vf-idle-rsv-crash", "Failed", 2)
        [idle] = await machines.idle_machines()
        assert idle.bot_id == "rsv-crash" and machines.exit_detail("rsv-crash") == "exit code 2"
    finally:
        await machines.aclose()


async def test_a_bots_hello_is_admitted_only_with_its_own_pods_token_while_that_pod_runs(
        fake_k8s: FakeKubernetes) -> None:
    machines = warm(fake_k8s)
    grant = BotGrant(kind="idle", subject="rsv-id", expires=int(time.time()) + 600)

    def hello(token: str | None) -> Hello:
        return Hello(machine_id="rsv-id", capabilities=("webrtc",), identity=token)

    try:
        await machines.launch_idle("rsv-id", "c")
        await machines.launch_idle("rsv-other", "c")
        assert fake_k8s.envs["vf-idle-rsv-id"]["BOT_IDENTITY"] == "k8s"  # the bot sends its pod's token
        fake_k8s.set_phase("vf-idle-rsv-id", "Running")
        own, other = fake_k8s.token_of("vf-idle-rsv-id"), fake_k8s.token_of("vf-idle-rsv-other")
        assert own and other
        assert await machines.identity.refusal(grant, hello(own)) is None
        assert "no identity token" in str(await machines.identity.refusal(grant, hello(None)))
        assert "not authenticated" in str(await machines.identity.refusal(grant, hello("forged")))
        assert "names pod ['vf-idle-rsv-other']" in str(await machines.identity.refusal(grant, hello(other)))
        await machines.adopt("rsv-id", spec())
        assert await machines.identity.refusal(grant, hello(own)) is None  # a claimed pod keeps its bot label
        fake_k8s.set_phase("vf-idle-rsv-id", "Succeeded", 0)
        assert "has ended" in str(await machines.identity.refusal(grant, hello(own)))
        await machines.retire("rsv-id")
        assert "not authenticated" in str(await machines.identity.refusal(grant, hello(own)))  # bound to its pod
        [review] = fake_k8s.calls_to("POST", "/tokenreviews")[:1]
        assert review.json()["spec"]["audiences"] == ["wss://d.example/bots/channel"]
    finally:
        await machines.aclose()


async def test_a_hello_is_admitted_only_from_a_pod_of_the_bots_service_account(fake_k8s: FakeKubernetes) -> None:
    """Another workload of the bots' namespace (another ServiceAccount) is not a bot, whatever its pod's
    name and labels."""
    bots = K8sMachines.from_env(env(fake_k8s, K8S_SERVICE_ACCOUNT="voicefleet-bot"))
    other = K8sMachines.from_env(env(fake_k8s, K8S_SERVICE_ACCOUNT="someone-else"))
    try:
        s = spec()
        await other.launch(s)  # a pod named and labelled as the session's, under another ServiceAccount
        name = f"vf-{s.session_id}"
        fake_k8s.set_phase(name, "Running")
        grant = BotGrant(kind="session", subject=s.session_id, expires=int(time.time()) + 600)
        hello = Hello(machine_id=name, capabilities=("webrtc",), session_id=s.session_id,
                      identity=fake_k8s.token_of(name))
        refused = await bots.identity.refusal(grant, hello)
        assert refused is not None and "system:serviceaccount:voicefleet-bots:voicefleet-bot" in refused
        assert await other.identity.refusal(grant, hello) is None  # its own account's deployment admits it
    finally:
        await bots.aclose()
        await other.aclose()


async def test_the_api_servers_own_audience_is_refused_for_the_bots_identity(fake_k8s: FakeKubernetes) -> None:
    """A bot's token of the API server's audience would be an API credential handed over at each hello."""
    for audience in ("https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local/"):
        with pytest.raises(SettingsError, match="API server's own audience"):
            K8sSettings.from_env(env(fake_k8s, BOT_IDENTITY_AUDIENCE=audience))
    assert await cluster_problems(env(fake_k8s)) == []
    fake_k8s.api_audiences = ("https://oidc.example/cluster", "voicefleet-api")  # a cluster's --api-audiences
    [problem] = await cluster_problems(env(fake_k8s, BOT_IDENTITY_AUDIENCE="voicefleet-api"))
    assert "one of the API server's own audiences" in problem and "BOT_IDENTITY_AUDIENCE" in problem
    assert await cluster_problems(env(fake_k8s, BOT_IDENTITY_AUDIENCE="voicefleet")) == []


async def test_a_cluster_that_names_no_audience_of_its_own_is_said_to_leave_the_audience_unchecked(
        fake_k8s: FakeKubernetes, caplog: pytest.LogCaptureFixture) -> None:
    """A review of a token that names none of the API server's audiences (an OIDC or webhook token)
    lists none: the dispatcher cannot check, and says so rather than passing silently."""
    fake_k8s.api_audiences = ()
    with caplog.at_level(logging.WARNING, logger="dispatcher.machines.k8s.served"):
        assert await cluster_problems(env(fake_k8s, BOT_IDENTITY_AUDIENCE="voicefleet-api")) == []
    assert any("not checked" in r.getMessage() and "voicefleet-api" in r.getMessage() for r in caplog.records)


def test_settings_a_deployment_gets_wrong_are_refused_at_start_naming_the_fix() -> None:
    with pytest.raises(SettingsError, match="K8S_NAMESPACE"):
        K8sSettings.from_env({"BOT_IMAGE": "i", "K8S_API_URL": "https://k.example"})
    with pytest.raises(SettingsError, match="KUBERNETES_SERVICE_HOST"):
        K8sSettings.from_env({"BOT_IMAGE": "i", "K8S_NAMESPACE": "bots"})
    with pytest.raises(SettingsError, match="must be https"):
        K8sSettings.from_env({"BOT_IMAGE": "i", "K8S_NAMESPACE": "bots", "K8S_API_URL": "http://k.example"})
    with pytest.raises(SettingsError, match="K8S_BOT_MEMORY"):
        K8sSettings.from_env({"BOT_IMAGE": "i", "K8S_NAMESPACE": "bots", "K8S_API_URL": "https://k.example",
                              "K8S_BOT_MEMORY": "lots"})
    in_cluster = K8sSettings.from_env({"BOT_IMAGE": "i", "K8S_NAMESPACE": "bots", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                       "KUBERNETES_SERVICE_PORT": "443"})
    assert in_cluster.api_url == "https://10.0.0.1:443"
    assert in_cluster.ca_file == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    problems = configuration_problems({"MACHINES": "k8s", "TRANSPORTS": "webrtc"})
    assert any("K8S_NAMESPACE" in p and "BOT_IMAGE" in p for p in problems)


async def test_k8s_mode_builds_a_reserve_only_with_a_channel_and_mirrors_no_create_limit(
        fake_k8s: FakeKubernetes) -> None:
    from dispatcher.channel.access import ChannelAccess
    from dispatcher.factory import build_machines
    from dispatcher.machines.base import Machines, WarmMachines
    from dispatcher.settings import Settings
    from dispatcher.store.local import LocalCoordination

    cold = build_machines(Settings(machines="k8s"), fake_k8s.env, LocalCoordination())
    warm_ = build_machines(Settings(machines="k8s", transports=("webrtc",)),
                           {**fake_k8s.env, "BOT_CHANNEL_URL": "wss://d.example/bots/channel"}, LocalCoordination())
    try:
        assert isinstance(cold, Machines) and not isinstance(cold, WarmMachines)
        assert isinstance(warm_, K8sWarmMachines) and warm_.transport == "webrtc"
        assert warm_.create_rate is None and warm_.exit_detail("never-dialled") is None
        warm_.attach_channel(ChannelAccess.generated())  # its bots read BOT_CHANNEL_URL: nothing changes
    finally:
        await cold.aclose()
        await warm_.aclose()


@pytest.mark.parametrize(("reason", "message"), [
    ("Evicted", EVICTED), ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")])
async def test_a_pod_the_kubelet_failed_reads_the_kubelets_reason_not_its_bots_kill(
        k8s: K8sMachines, fake_k8s: FakeKubernetes, reason: str, message: str) -> None:
    """An evicted (or overdue) pod's bot is killed, exit code 137: the kubelet's reason says why, and
    outlives the pod the reaper deletes, on this replica."""
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    fake_k8s.set_phase(name, "Running")
    fake_k8s.evict(name, reason, message)
    assert fake_k8s.pods[name]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    machine = await k8s.status(s.session_id)
    assert machine is not None and machine.state is MachineState.FAILED and machine.detail == f"{reason}: {message}"
    assert await k8s.stop(s.session_id) and name not in fake_k8s.pods
    assert await k8s.status(s.session_id) == machine


async def test_a_pod_the_admission_policy_refuses_is_named_so_not_a_token_or_rbac_problem(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    """The stack's policy admits only its own bot image: a dispatcher launching another is told the policy
    refused it, and the way out, never to check a token that works."""
    fake_k8s.admitted_images = {"registry.example/voicefleet-bot@sha256:" + "9" * 64}
    with pytest.raises(MachinesError) as refused:
        await k8s.launch(spec())
    message = refused.value.message
    assert refused.value.reason == "k8s_rejected" and refused.value.retry_after is None
    assert "the cluster's admission refused to create pod" in message
    assert "ValidatingAdmissionPolicy 'voicefleet-bots-made-by-the-dispatcher'" in message
    assert "K8S_TOKEN_FILE" not in message and "What the dispatcher's pods may be" in message
    assert len(fake_k8s.calls_to("POST", "/pods")) == 1  # refused for what the pod is: not retried


async def test_a_session_pod_holds_its_session_id_and_no_secret_of_it(k8s: K8sMachines,
                                                                      fake_k8s: FakeKubernetes) -> None:
    secrets_ = {"channel": "chan-" + "c" * 40, "daily": "daily-" + "d" * 40, "turn": "turn-" + "t" * 40,
                "room": "https://team.daily.co/room-" + "r" * 12, "caller": "caller-data-" + "k" * 20}
    s = spec(channel_token=secrets_["channel"], bot_token=secrets_["daily"], room_url=secrets_["room"],
             body={"apiKey": secrets_["caller"]},
             ice_config={"iceServers": [{"urls": ["turn:turn.example:3478"], "username": "u",
                                         "credential": secrets_["turn"]}]})
    await k8s.launch(s)
    name = f"vf-{s.session_id}"
    created = [c.json() for c in fake_k8s.calls_to("POST", "/pods")]
    held = json.dumps([fake_k8s.pods[name], fake_k8s.envs[name], created])
    assert s.session_id in held  # control: this is the session's pod
    for what, value in secrets_.items():
        assert value not in held, f"the session's {what} value is in its pod"
    assert set(fake_k8s.envs[name]) == {"BOT_CHANNEL_URL", "BOT_IMAGE_DIGEST", "BOT_IDENTITY", "VOICEFLEET_SESSION_ID",
                                        "MAX_SESSION_SECONDS", "BOT_TRANSPORT"}


async def test_a_session_pods_hello_is_admitted_on_its_identity_alone_for_its_own_session_only(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    channels = BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=k8s.identity)
    k8s.watch_channels(channels)
    assert channels.identity_only is not None
    a, b = spec(), spec()
    await k8s.launch(a)
    await k8s.launch(b)
    pod_a, pod_b = f"vf-{a.session_id}", f"vf-{b.session_id}"

    def hello(pod: str, token_of: str, **kw: object) -> Hello:
        return Hello(**{"machine_id": pod, "identity": fake_k8s.token_of(token_of), **kw})  # type: ignore[arg-type]

    granted = await channels.identity_only.grant(hello(pod_a, pod_a, session_id=a.session_id))
    assert isinstance(granted, BotGrant) and (granted.kind, granted.subject) == ("session", a.session_id)
    assert "is session" in str(await channels.identity_only.grant(hello(pod_a, pod_a, session_id=b.session_id)))
    assert "not vf-" in str(await channels.identity_only.grant(hello(pod_b, pod_a, session_id=b.session_id)))
    assert "not a JWT" in str(await channels.identity_only.grant(
        Hello(machine_id=pod_a, identity="forged", session_id=a.session_id)))
    fake_k8s.set_phase(pod_b, "Succeeded", 0)
    assert "has ended" in str(await channels.identity_only.grant(hello(pod_b, pod_b)))


async def test_a_session_pods_grant_is_its_name_and_uid_never_a_label_anyone_may_write(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    """A pod relabelled as another session's is not that session's bot (its name is not `vf-<id>`), and a
    pod deleted and made again under the name between the review and the read is not the reviewed one."""
    channels = BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=k8s.identity)
    k8s.watch_channels(channels)
    assert channels.identity_only is not None
    a, b = spec(), spec()
    await k8s.launch(a)
    await k8s.launch(b)
    pod_a, pod_b = f"vf-{a.session_id}", f"vf-{b.session_id}"
    fake_k8s.pods[pod_b]["metadata"]["labels"]["voicefleet.io/session"] = a.session_id  # a rewritten label
    refused = await channels.identity_only.grant(Hello(machine_id=pod_b, identity=fake_k8s.token_of(pod_b)))
    assert isinstance(refused, str) and "no session's pod" in refused

    review = k8s.session_tokens._review

    async def recreated_after(token: str) -> HttpResponse:
        answer = await review(token)
        fake_k8s.pods[pod_a]["metadata"]["uid"] = "a-later-pod-of-the-same-name"
        return answer

    k8s.session_tokens._review = recreated_after  # type: ignore[assignment]
    refused = await channels.identity_only.grant(Hello(machine_id=pod_a, identity=fake_k8s.token_of(pod_a)))
    assert isinstance(refused, str) and "earlier pod" in refused


@pytest.mark.parametrize("audiences", [[], ["https://kubernetes.default.svc"]])
async def test_a_review_authenticated_for_another_audience_admits_nothing(
        k8s: K8sMachines, fake_k8s: FakeKubernetes, audiences: list[str]) -> None:
    """A TokenReview whose `status.audiences` lacks voicefleet's (none: the API server's own, as an
    audience-agnostic authenticator answers) is refused by the dispatcher itself, whatever else it says."""
    channels = BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=k8s.identity)
    k8s.watch_channels(channels)
    assert channels.identity_only is not None
    a = spec()
    await k8s.launch(a)
    pod = f"vf-{a.session_id}"
    review = k8s.session_tokens._review

    async def for_another_audience(token: str) -> HttpResponse:
        answer = await review(token)
        body = answer.json()
        assert body["status"]["authenticated"] is True  # control: the fake authenticated it for ours
        body["status"]["audiences"] = audiences
        return HttpResponse(answer.status_code, answer.headers, json.dumps(body).encode())

    k8s.session_tokens._review = for_another_audience  # type: ignore[assignment]
    refused = await channels.identity_only.grant(Hello(machine_id=pod, identity=fake_k8s.token_of(pod)))
    assert isinstance(refused, str) and "is not for" in refused


async def test_a_retirement_after_another_replica_claimed_the_pod_leaves_the_session_running(
        fake_k8s: FakeKubernetes) -> None:
    """The replica that made (or listed) an idle pod retires it by its bot id, on a view older than another
    replica's claim: the pod is a session's now, and stays."""
    maker, claimer = warm(fake_k8s), warm(fake_k8s)
    try:
        await maker.launch_idle("rsv-taken", "c")
        fake_k8s.set_phase("vf-idle-rsv-taken", "Running")
        claimed = spec()
        await claimer.adopt("rsv-taken", claimed)
        await maker.retire("rsv-taken")  # the sweep's or the planner's, decided before the claim
        labels = fake_k8s.pods["vf-idle-rsv-taken"]["metadata"]["labels"]
        assert labels["voicefleet.io/session"] == claimed.session_id, "the claimed session's pod was deleted"
        assert not fake_k8s.calls_to("DELETE", "/pods/")
    finally:
        await maker.aclose()
        await claimer.aclose()


async def test_a_claim_between_a_retirements_read_and_its_delete_keeps_the_pod(fake_k8s: FakeKubernetes) -> None:
    """The retirement reads the pod idle; another replica claims it before the delete is sent: the delete's
    preconditions (the pod as read) refuse it, and the pod read again is a session's."""
    maker, claimer = warm(fake_k8s), warm(fake_k8s)
    claimed, reads = spec(), []
    read = maker.read_pod

    async def read_then_claimed(name: str) -> dict[str, Any] | None:
        pod = await read(name)
        reads.append(name)
        if len(reads) == 1:  # the claim lands after the retirement's first read
            await claimer.adopt("rsv-between", claimed)
        return pod

    try:
        await maker.launch_idle("rsv-between", "c")
        fake_k8s.set_phase("vf-idle-rsv-between", "Running")
        maker.read_pod = read_then_claimed  # type: ignore[method-assign]
        await maker.retire("rsv-between")
        assert fake_k8s.pods["vf-idle-rsv-between"]["metadata"]["labels"]["voicefleet.io/session"] == \
            claimed.session_id, "the claimed session's pod was deleted"
        [refused] = fake_k8s.calls_to("DELETE", "/pods/")
        assert refused.json()["preconditions"]["uid"] == fake_k8s.pods["vf-idle-rsv-between"]["metadata"]["uid"]
    finally:
        await maker.aclose()
        await claimer.aclose()


async def test_a_claim_that_failed_after_its_re_tag_still_retires_the_pod_it_claimed(fake_k8s: FakeKubernetes) -> None:
    """At the replica whose claim re-tagged the pod, a failure after it (over cells: the session was launched
    in another cluster first) retires the pod: it carries the session this replica gave it, and no other."""
    machines = warm(fake_k8s)
    try:
        await machines.launch_idle("rsv-own", "c")
        fake_k8s.set_phase("vf-idle-rsv-own", "Running")
        for _ in range(3):  # kubelet status writes: each a new resourceVersion, none a claim
            fake_k8s.set_phase("vf-idle-rsv-own", "Running")
        await machines.adopt("rsv-own", spec())
        await machines.retire("rsv-own")
    finally:
        await machines.aclose()
    assert "vf-idle-rsv-own" not in fake_k8s.standing()
