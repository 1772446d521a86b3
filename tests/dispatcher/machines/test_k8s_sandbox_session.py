"""A Kubernetes `agent-sandbox` session end to end: `python -m dispatcher` with K8S_MODE=agent-sandbox on
the fake API server with agent-sandbox's controller, which runs a real bot process per Sandbox pod
(tests/replicas/redialling_bot.py, voicefleet's own channel code) as the kubelet runs the bot image.

Every pod is the pool's template's, as a stack renders it: the channel's URL and `BOT_IDENTITY=k8s`, no
credential. The start's SandboxClaim gets a cold Sandbox (the pool keeps none warm); neither the claim nor
its pod holds a credential or a launch value. Its bot dials the channel with its pod's projected token
alone, is admitted as the session's bot because the claim holds its Sandbox, takes the session's values
over the channel and answers the caller's offer. Stopping the session deletes the claim in the
foreground, and the pod's bot gets SIGTERM. A pool sized above 0 is scaled to 0 as the dispatcher starts.

The warm path: a pool pod's bot dials with its pod's identity alone and waits idle; a start's claim
adopts its pod, and the bot is handed the session over the channel and answers its caller's offer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel.credentials import PREFIX
from stacks.k8s.pool_template import pool_pod
from tests.dispatcher.machines.test_k8s_session import DEADLINE, KEY, dispatcher
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox
from tests.support.ports import free_port
from tests.support.session_api import SessionApi

pytestmark = pytest.mark.slow  # a dispatcher and a bot process per case

AUDIENCE = "voicefleet-bots.example"  # the template's token audience is the dispatcher's BOT_IDENTITY_AUDIENCE


def template(fake: FakeAgentSandbox, port: int) -> dict[str, Any]:
    """voicefleet's bot pod as the stack renders the template's (stacks/k8s/pool_template.py), from the
    settings `dispatcher` starts with: the channel's URL, the identity, no credential, BOT_TRANSPORT=webrtc."""
    return pool_pod({**fake.env, "BOT_IDENTITY_AUDIENCE": AUDIENCE, "TRANSPORTS": "webrtc",
                     "BOT_CHANNEL_URL": f"ws://127.0.0.1:{port}{CHANNEL_PATH}"})["spec"]


@pytest.fixture
def cold(tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> Iterator[SessionApi]:
    port = free_port()
    fake_k8s_sandbox.add_pool(POOL, 0, template(fake_k8s_sandbox, port))
    for running in dispatcher(tmp_path, fake_k8s_sandbox, port, RESERVE_MAX_IDLE="0", BOT_IDENTITY_AUDIENCE=AUDIENCE):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


def readable(fake: FakeAgentSandbox, name: str) -> str:
    """What whoever may `get` the session's claim and pod reads (their annotations, the pod's env), and
    every object the dispatcher wrote to the API server."""
    written = [c.json() for c in fake.calls_to("POST") if "/tokenreviews" not in c.path]
    return json.dumps([fake.claims.get(name), fake.pods.get(name), fake.envs.get(name), written])


def test_a_cold_claims_bot_dials_with_its_pods_identity_alone_and_takes_its_session_and_quota_refuses_a_claim(
        cold: SessionApi, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    session_id = cold.started()
    name = f"vf-{session_id}"
    assert name in fake.claims and fake.pods[name]["metadata"]["labels"]["agents.x-k8s.io/launch-type"] == "cold"
    process = fake.processes[name]
    assert fake.envs[name]["BOT_TRANSPORT"] == "webrtc"  # a cold pod is the template's too
    assert cold.answered_by(session_id) == f"{session_id}/{process.pid}"  # the claimed pod's own process
    reviewed = [c.json()["spec"]["token"] for c in fake.calls_to("POST", "/tokenreviews")]
    assert fake.token_of(name) in reviewed  # its hello was admitted on its pod's own token
    seen = readable(fake, name)
    assert session_id in seen  # control: the claim and its pod are what is read here
    assert "BOT_CHANNEL_TOKEN" not in seen and f'"{PREFIX}.' not in seen, "a channel credential is readable"
    assert "VOICEFLEET_SESSION_ID" not in fake.envs[name] and "voicefleet.io/bot-env" not in seen
    assert f"bot {name} connected ({session_id})" in cold.running.log()  # the session's bot, no idle wait

    cold.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    cold.wait_for("the bot process gone", lambda: process.poll() is not None)
    assert process.returncode == 0  # SIGTERM: the bot said goodbye within the grace period
    cold.wait_for("the claim and its pod gone", lambda: name not in fake.claims and name not in fake.pods)
    ended = cold.call("GET", f"/sessions/{session_id}").json()  # its claim gone, the session index answers
    assert ended["status"] == "ended", ended

    # Past the claim quota, on the same dispatcher: refused with a retry hint, and no claim.
    fake_k8s_sandbox.claim_quota = 0
    refused = cold.start(expected=(503,))
    error = refused.json()["error"]
    assert error["code"] == "k8s_capacity" and "retry-after" in refused.headers
    assert "at its quota of sandboxclaims;" in error["message"]  # the quota hit, not the pods'
    assert fake_k8s_sandbox.claims == {} and fake_k8s_sandbox.pods == {}


def test_the_dispatcher_sizes_the_pool_from_its_reserve_settings(
        tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    fake.add_pool(POOL, 1, template(fake, free_port()))  # the CRD's default size: one warm Sandbox
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
    fake.add_pool(POOL, 0, template(fake, port))
    started = dispatcher(tmp_path, fake, port, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="1", RESERVE_BUFFER="0",
                         RESERVE_BURST="0", BOT_IDENTITY_AUDIENCE=AUDIENCE)
    running = next(started)
    try:
        api = SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)
        api.wait_for("a warm pod, the planner's", lambda: fake.warm(POOL))  # RESERVE_MIN_IDLE=1
        assert fake.warm_pools[POOL]["spec"]["replicas"] == 1
        [warm] = fake.warm(POOL)
        assert "BOT_CHANNEL_TOKEN" not in fake.envs[warm]
        assert fake.envs[warm]["BOT_TRANSPORT"] == "webrtc"  # the one web transport the dispatcher offers
        api.wait_for("its bot idle on the channel", lambda: f"bot {warm} connected (idle)" in running.log())

        session_id = api.started()
        assert fake.claims[f"vf-{session_id}"]["status"]["sandbox"]["name"] == warm  # adopted, no pod of its own
        assert f"vf-{session_id}" not in fake.pods
        assert api.answered_by(session_id) == f"{session_id}/{fake.processes[warm].pid}"
        api.wait_for("the pool refilled", lambda: [w for w in fake.warm(POOL) if w != warm])
    finally:
        started.close()
