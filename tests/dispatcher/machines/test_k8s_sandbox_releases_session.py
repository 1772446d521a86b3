"""Two releases on Kubernetes' `agent-sandbox` mode end to end: `python -m dispatcher` with RELEASES (stable
at 90 %, a canary at 10 %) on the fake API server with agent-sandbox's controller, which runs a real bot
process (tests/replicas/redialling_bot.py) per pod of each release's pool, as a stack makes them (a
SandboxTemplate and a SandboxWarmPool per release, labelled `voicefleet.io/release`).

The canary enters at 0 % until its smoke session (on its own pool) passes, then at 10 %. Each start is
drawn by weight, its claim checks out from its release's pool and adopts a warm pod of that pool (every
start once the pools have filled); the split is within binomial bounds; a pinned start runs the canary;
a new canary build whose `bot()` raises is rolled back by the dispatcher on its sessions' failures, which
sets its pool to 0, and its warm pods go.
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.releases.health import SHORT_SESSION_SECONDS
from stacks.k8s.pool_template import pool_pod
from tests.dispatcher.machines.test_k8s_session import DEADLINE, KEY, dispatcher
from tests.fakes.k8s import IMAGE
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.ports import free_port
from tests.support.session_api import SessionApi

pytestmark = pytest.mark.slow  # a dispatcher and a bot process per pod

AUDIENCE = "voicefleet-bots.example"
ADMIN = "admin-" + "a" * 40
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
STABLE, CANARY = "stable", "canary"
IMAGES = {STABLE: IMAGE, CANARY: IMAGE.rsplit("@", 1)[0] + "@sha256:" + "c" * 64}
ROLLBACK_STARTS = 40  # at 50 %, the rule's RELEASE_HEALTH_MIN_CANARY failures come long before
LIVE = 6  # sessions running at once, each stopped once past SHORT_SESSION_SECONDS (not ended early)
STARTS = 40  # bounded: each is a claim, an adoption and a new warm pod's process on a busy machine
CANARY_SHARE = 0.10


def pool_of(release: str) -> str:
    return f"voicefleet-bot-{release}"


def add_pools(fake: FakeAgentSandbox, port: int) -> None:
    """Each release's template (its image) and pool, as the stack renders them for the dispatcher's settings."""
    for release, image in IMAGES.items():
        template = pool_pod({**fake.env, "BOT_IMAGE": image, "BOT_IDENTITY_AUDIENCE": AUDIENCE, "TRANSPORTS": "webrtc",
                             "BOT_CHANNEL_URL": f"ws://127.0.0.1:{port}{CHANNEL_PATH}"})
        # The stand-in reports that its caller joined and heard it, as a real bot does: a smoke session passes.
        template["spec"]["containers"][0]["env"].append({"name": "STANDIN_HEARD", "value": "1"})
        fake.add_pool(pool_of(release), 0, template["spec"], template["metadata"]["labels"],
                      labels={"voicefleet.io/release": release})


@pytest.fixture
def two_releases(tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> Iterator[SessionApi]:
    port = free_port()
    add_pools(fake_k8s_sandbox, port)
    releases = {"releases": [{"name": release, "images": {"*": image}} for release, image in IMAGES.items()],
                "canaryPercent": int(CANARY_SHARE * 100)}
    for running in dispatcher(tmp_path, fake_k8s_sandbox, port, RELEASES=json.dumps(releases),
                              DISPATCHER_ADMIN_KEYS=ADMIN, TURN_CREDENTIALS_PER_KEY=str(2 * STARTS),
                              RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="4", RELEASE_HEALTH_MIN_CANARY="4",
                              RELEASE_HEALTH_MIN_STABLE="20",
                              # Every pod's bot dials from 127.0.0.1 here; on a cluster each has its own address.
                              BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS="1000",
                              RESERVE_BUFFER="0", RESERVE_BURST="0", BOT_IDENTITY_AUDIENCE=AUDIENCE):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


def filled(fake: FakeAgentSandbox, releases: tuple[str, ...] = (STABLE, CANARY)) -> bool:
    """Every release's pool holds a warm Sandbox whose pod runs."""
    return all(any(fake.pods.get(name, {}).get("status", {}).get("phase") == "Running"
                   for name in fake.warm(pool_of(release))) for release in releases)


def canary_weight(admin: SessionApi) -> int:
    listed = admin.call("GET", "/releases").json()["releases"]
    return int(next(r for r in listed if r["name"] == CANARY)["weight"])


def adopted(fake: FakeAgentSandbox, session_id: str) -> dict[str, Any]:
    claim = fake.claims[f"vf-{session_id}"]
    pod = claim["status"]["sandbox"]["name"]
    return {"pool": claim["spec"]["warmPoolRef"]["name"],
            "warm": fake.pods[pod]["metadata"]["labels"].get("agents.x-k8s.io/launch-type") == "warm"}


def test_two_releases_split_by_weight_each_start_warm_on_its_pool_and_a_failing_canary_rolled_back_to_no_pool(
        two_releases: SessionApi, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    api, fake = two_releases, fake_k8s_sandbox
    admin = SessionApi(api.running, key=ADMIN, provider="k8s", deadline=DEADLINE)
    assert canary_weight(admin) == 0  # until its smoke session passes
    api.wait_for("the canary's pool emptied: no start is drawn for it yet", lambda: not fake.warm(pool_of(CANARY)))
    smoke = admin.call("POST", f"/releases/{CANARY}/smoke", (201,)).json()
    assert smoke["release"] == CANARY and fake.claims[f"vf-{smoke['session_id']}"]["spec"]["warmPoolRef"] == {
        "name": pool_of(CANARY)}  # its pinned start: cold on its own pool
    offer = f"{api.url}/sessions/{smoke['session_id']}/api/offer"
    api.wait_for("the smoke session's bot answering", lambda: httpx.post(
        offer, headers=ADMIN_AUTH, json={"sdp": "v=0", "type": "offer"}, timeout=DEADLINE).status_code == 200)
    api.wait_for("the smoke passed: the canary at 10 %", lambda: canary_weight(admin) == 10)
    api.wait_for("each release's pool filled", lambda: filled(fake))
    live: deque[tuple[float, str]] = deque()  # each session stopped once past SHORT_SESSION_SECONDS: no early end
    counts = {STABLE: 0, CANARY: 0}
    for _ in range(STARTS):
        api.wait_for("each release's pool filled again", lambda: filled(fake))
        answer = api.start().json()
        session_id, release = answer["session_id"], answer["release"]
        counts[release] += 1
        assert adopted(fake, session_id) == {"pool": pool_of(release), "warm": True}, (release, session_id)
        live.append((time.monotonic(), session_id))
        stop_served(api, live, SHORT_SESSION_SECONDS + 1)
    # Binomial(40, 0.1): mean 4, sd 1.9; four sd either side, so only a broken split fails.
    assert 0 <= counts[CANARY] <= 12 and counts[STABLE] >= 28, counts

    api.wait_for("each release's pool filled again", lambda: filled(fake))
    pinned = api.call("POST", "/start?wait=started", (201,), json={"release": CANARY}).json()
    assert pinned["release"] == CANARY
    assert adopted(fake, pinned["session_id"]) == {"pool": pool_of(CANARY), "warm": True}
    live.append((time.monotonic(), pinned["session_id"]))

    # A new canary build whose bot() raises as its session begins, given half the traffic: rolled back.
    failing = copy.deepcopy(fake.templates[pool_of(CANARY)])
    failing["containers"][0]["env"].append({"name": "STANDIN_FAILS", "value": "1"})
    fake.set_template(pool_of(CANARY), failing)  # Recreate: its warm pods are replaced at once
    admin.call("PUT", f"/releases/{CANARY}", (200,), json={"weight": 50})
    for _ in range(ROLLBACK_STARTS):
        if canary_weight(admin) == 0:
            break
        api.wait_for("each release's pool filled again", lambda: filled(fake))
        answer = api.start().json()
        live.append((time.monotonic(), answer["session_id"]))
        stop_served(api, live, SHORT_SESSION_SECONDS + 1)
    api.wait_for("the canary rolled back by the dispatcher", lambda: canary_weight(admin) == 0)
    api.wait_for("the canary's pool set to 0", lambda: fake.warm_pools[pool_of(CANARY)]["spec"]["replicas"] == 0)
    api.wait_for("its warm pods gone", lambda: not fake.warm(pool_of(CANARY)))
    assert fake.warm_pools[pool_of(STABLE)]["spec"]["replicas"] >= 1  # the stable release keeps its own
    assert "automatic rollback" in json.dumps(admin.call("GET", "/releases/history").json())
    stop_served(api, live, 0)


def stop_served(api: SessionApi, live: deque[tuple[float, str]], after: float) -> None:
    """Stops the sessions started more than `after` seconds ago, waiting for the oldest while LIVE run (a
    caller hangs up; no bot process piles up on the machine, none under the dispatcher's session cap)."""
    while live and (time.monotonic() - live[0][0] >= after or len(live) >= LIVE):
        time.sleep(max(0.0, after - (time.monotonic() - live[0][0])))
        api.call("DELETE", f"/sessions/{live.popleft()[1]}", (200, 202, 204, 404))
