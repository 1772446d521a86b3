"""A Kubernetes `agent-sandbox` session end to end: `python -m dispatcher` with K8S_MODE=agent-sandbox on
the fake API server with agent-sandbox's controller, which runs a real bot process per Sandbox pod
(tests/replicas/redialling_bot.py, voicefleet's own channel code) as the kubelet runs the bot image.

The start's SandboxClaim gets a cold Sandbox (the pool keeps none warm); its pod carries the session's
values as its annotation, which the template mounts as a downward API file (BOT_ENV_FILE). Its bot dials
the channel with the session's credential and its pod's projected token, admitted because the claim
holds that pod; it answers the caller's offer. Stopping the session deletes the claim in the
foreground, and the pod's bot gets SIGTERM. A pool sized above 0 is scaled to 0 as the dispatcher starts.

The warm path: a pool pod's bot, whose template gives it the channel's URL and `BOT_IDENTITY=k8s` but no
credential, dials with its pod's identity alone and waits idle; a start's claim adopts its pod, and the
bot is handed the session over the channel and answers its caller's offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.settings import K8sSettings
from tests.dispatcher.machines.test_k8s_session import DEADLINE, KEY, dispatcher
from tests.fakes.k8s_sandbox import BOT_ENV_NOTE, POOL, FakeAgentSandbox
from tests.support.ports import free_port
from tests.support.session_api import SessionApi

pytestmark = pytest.mark.slow  # a dispatcher and a bot process per case

BOT_ENV_DIR = "/etc/voicefleet"
AUDIENCE = "voicefleet-bots.example"  # the template's token audience is the dispatcher's BOT_IDENTITY_AUDIENCE


def template(fake: FakeAgentSandbox) -> dict[str, Any]:
    """voicefleet's bot pod, plus the downward API file of the session's values."""
    settings = K8sSettings.from_env({**fake.env, "BOT_IDENTITY_AUDIENCE": AUDIENCE})
    spec = pod_body(settings, "template", image=settings.image, env={"BOT_ENV_FILE": f"{BOT_ENV_DIR}/bot-env"},
                    labels={}, annotations={}, deadline_seconds=3600)["spec"]
    spec["volumes"].append({"name": "bot-env", "downwardAPI": {"items": [
        {"path": "bot-env", "fieldRef": {"fieldPath": f"metadata.annotations['{BOT_ENV_NOTE}']"}}]}})
    spec["containers"][0]["volumeMounts"].append({"name": "bot-env", "mountPath": BOT_ENV_DIR, "readOnly": True})
    return spec


@pytest.fixture
def cold(tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> Iterator[SessionApi]:
    fake_k8s_sandbox.add_pool(POOL, 0, template(fake_k8s_sandbox))
    for running in dispatcher(tmp_path, fake_k8s_sandbox, RESERVE_MAX_IDLE="0", BOT_IDENTITY_AUDIENCE=AUDIENCE):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


def test_a_cold_claims_bot_takes_its_session_from_its_pod_and_ends_with_the_claim(
        cold: SessionApi, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    session_id = cold.started()
    name = f"vf-{session_id}"
    assert name in fake.claims and fake.pods[name]["metadata"]["labels"]["agents.x-k8s.io/launch-type"] == "cold"
    process = fake.processes[name]
    assert cold.answered_by(session_id) == f"{session_id}/{process.pid}"  # the claimed pod's own process
    assert "VOICEFLEET_SESSION_ID" not in fake.envs[name]  # the values came from the annotation's file
    reviewed = [c.json()["spec"]["token"] for c in fake.calls_to("POST", "/tokenreviews")]
    assert fake.token_of(name) in reviewed  # its hello was admitted on its pod's own token

    cold.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    cold.wait_for("the bot process gone", lambda: process.poll() is not None)
    assert process.returncode == 0  # SIGTERM: the bot said goodbye within the grace period
    cold.wait_for("the claim and its pod gone", lambda: name not in fake.claims and name not in fake.pods)
    cold.call("GET", f"/sessions/{session_id}", (404,))  # no claim, no session: the API server is the record


def test_a_start_past_the_claim_quota_is_refused_with_a_retry_hint_and_no_claim(
        cold: SessionApi, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake_k8s_sandbox.claim_quota = 0
    refused = cold.start(expected=(503,))
    assert refused.json()["error"]["code"] == "k8s_capacity" and "retry-after" in refused.headers
    assert fake_k8s_sandbox.claims == {} and fake_k8s_sandbox.pods == {}


def test_the_dispatcher_sizes_the_pool_from_its_reserve_settings(
        tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    fake.add_pool(POOL, 1, template(fake))  # the CRD's default size: one warm Sandbox
    started = dispatcher(tmp_path, fake, RESERVE_MAX_IDLE="0", BOT_IDENTITY_AUDIENCE=AUDIENCE)
    running = next(started)
    try:
        api = SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)
        api.wait_for("the pool's size reported", lambda: f"sandboxwarmpool {POOL} keeps 1 Sandbox(es) warm"
                     in running.log())
        api.wait_for("the pool sized to RESERVE_MAX_IDLE=0", lambda: fake.warm_pools[POOL]["spec"]["replicas"] == 0)
        api.wait_for("its warm Sandbox gone", lambda: not fake.warm(POOL))
    finally:
        started.close()


def test_a_warm_pool_bot_dials_with_its_identity_alone_and_serves_the_session_its_claim_adopted(
        tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    port = free_port()
    pod = template(fake)  # as a stack renders it: the channel's URL, the identity, no credential
    pod["containers"][0]["env"] += [{"name": "BOT_CHANNEL_URL", "value": f"ws://127.0.0.1:{port}{CHANNEL_PATH}"},
                                    {"name": "BOT_IDENTITY", "value": "k8s"}]
    fake.add_pool(POOL, 0, pod)
    started = dispatcher(tmp_path, fake, port, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="1", RESERVE_BUFFER="0",
                         RESERVE_BURST="0", BOT_IDENTITY_AUDIENCE=AUDIENCE)
    running = next(started)
    try:
        api = SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)
        api.wait_for("a warm pod, the planner's", lambda: fake.warm(POOL))  # RESERVE_MIN_IDLE=1
        assert fake.warm_pools[POOL]["spec"]["replicas"] == 1
        [warm] = fake.warm(POOL)
        assert "BOT_CHANNEL_TOKEN" not in fake.envs[warm]
        api.wait_for("its bot idle on the channel", lambda: f"bot {warm} connected (idle)" in running.log())

        session_id = api.started()
        assert fake.claims[f"vf-{session_id}"]["status"]["sandbox"]["name"] == warm  # adopted, no pod of its own
        assert f"vf-{session_id}" not in fake.pods
        assert api.answered_by(session_id) == f"{session_id}/{fake.processes[warm].pid}"
        api.wait_for("the pool refilled", lambda: [w for w in fake.warm(POOL) if w != warm])
    finally:
        started.close()
