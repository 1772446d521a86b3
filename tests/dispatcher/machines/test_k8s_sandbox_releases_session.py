"""Two releases on Kubernetes' `agent-sandbox` mode end to end: `python -m dispatcher` with RELEASES (stable
at 90 %, a canary at 10 %) on the fake API server with agent-sandbox's controller, which runs a real bot
process (tests/replicas/redialling_bot.py) per pod of each release's pool, as a stack makes them (a
SandboxTemplate and a SandboxWarmPool per release, labelled `voicefleet.io/release`).

The canary enters at 0 % until its smoke session (on its own pool) passes, then at 10 %. Each start is
drawn by weight, its claim checks out from its release's pool and adopts a warm pod of that pool (every
start once the pools have filled); a pinned start runs the canary; a new canary build whose `bot()`
raises is rolled back by the dispatcher on its sessions' failures, which sets its pool to 0, and its warm
pods go. That a start was warm is the dispatcher's own record: its claim names its release's pool, and
its timeline's `ready` came from a pod of that pool (a cold one is named after its claim).

The draw is checked start by start rather than by its split: each start's Idempotency-Key is chosen so
that its session falls within 1 % of its release's share's edge (the draw keyed with this deployment's
secret, dispatcher/releases/choice.py), so a share off by a point, or weights the dispatcher did not
apply, sends one of them to the other release. That a thousand draws split within binomial bounds is
tests/dispatcher/releases/test_choice.py's, in-process.

Each caller hangs up on a timer of its own once its session is past SHORT_SESSION_SECONDS (a session
over sooner counts against its release), overlapping the next starts, with at most LIVE sessions at once.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.api.auth import caller_of
from dispatcher.releases.choice import BUCKETS, DrawKey
from dispatcher.releases.health import SHORT_SESSION_SECONDS
from dispatcher.sessions.ids import new_session_id
from dispatcher.sessions.release_watch import STOPPED_LOOKS_SECONDS
from dispatcher.settings import hash_api_key
from stacks.k8s.pool_template import pool_pod
from tests.dispatcher.machines.test_k8s_session import DEADLINE, KEY, dispatcher
from tests.fakes.k8s import IMAGE
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.ports import free_port
from tests.support.session_api import SessionApi

# A dispatcher and a bot process per pod: ~0.3 s of CPU a start, most of it its pod's new bot process
# (~0.2 s): a few dozen starts here, about a minute beside a load average of 20.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

AUDIENCE = "voicefleet-bots.example"
ADMIN = "admin-" + "a" * 40
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
# The deployment's secret, which keys the release draw (dispatcher/wiring.py): with no REGION_SECRET, the
# channel's token. The test knows it, as a client never does, to tell each start's draw in advance.
CHANNEL_TOKEN = "d" * 40
STABLE, CANARY = "stable", "canary"
IMAGES = {STABLE: IMAGE, CANARY: IMAGE.rsplit("@", 1)[0] + "@sha256:" + "c" * 64}
CANARY_PERCENT = 10
WARM_STARTS = {CANARY: 2, STABLE: 10}  # each a claim, an adoption, and a new warm pod's bot process
# The rule judges once each release has this many sessions: all of the stable's, each stopped by its caller
# once past SHORT_SESSION_SECONDS, its bot's own report of that end or not (on a loaded machine a stopped
# pod's bot often never sends it: the stop alone ends the session for the judge, release_watch.py).
MIN_STABLE = WARM_STARTS[STABLE]
MIN_CANARY = 4
# A failing canary session each. Judged with the canary's 2 good ones drawn by weight (pinned ones, the
# smoke's too, are not judged) against the stable's 0 failures in 10, the rule (confidence 0.999, margin 3
# points) breaches at the 6th failure (probability_worse); twice that bounds the loop.
ROLLBACK_STARTS = 12
# Sessions running at once: a bot process each, idle in its session, beside each pool's warm ones.
LIVE = 16
HOLD_SECONDS = SHORT_SESSION_SECONDS + 0.5  # the dispatcher counts from the request, before the start returns
# Starts in flight at once, each once every pool holds this many warm pods whose bot is on the channel: a
# start is mostly waits (the claim's create, the controller's passes, the watch, the hand-over), which
# overlap; the CPU each costs does not shrink.
STARTERS = 2
EDGE = BUCKETS // 100  # 1 % of the draw: a key within it of its share's edge


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


def keys_at_the_edge(canary_percent: int, release: str, how_many: int, prefix: str) -> list[str]:
    """Idempotency-Keys whose sessions the dispatcher draws for `release` while the canary has
    `canary_percent`, each within EDGE of that share's edge: at a share a point off they draw the other one."""
    key, owner = DrawKey(CHANNEL_TOKEN.encode()), caller_of(hash_api_key(KEY)).owner_key
    edge = canary_percent * BUCKETS // 100  # the canary's buckets come first ("canary" < "stable")
    near = range(edge - EDGE, edge) if release == CANARY else range(edge, edge + EDGE)
    found: list[str] = []
    for n in count():
        session_id = new_session_id(owner, f"{prefix}-{n}")
        if key.bucket(session_id) in near:  # the rule worked out here, not the dispatcher's own `drawn`
            found.append(f"{prefix}-{n}")
            if len(found) == how_many:
                return found
    raise AssertionError("unreachable")


def start_keyed(api: SessionApi, key: str) -> dict[str, Any]:
    """A start with this Idempotency-Key, its bot running; its session's id, derived as the dispatcher does."""
    answer = api.call("POST", "/start?wait=started", (201,), json={}, headers={"Idempotency-Key": key}).json()
    assert answer["session_id"] == new_session_id(caller_of(hash_api_key(KEY)).owner_key, key)
    return dict(answer)


@pytest.fixture
def two_releases(tmp_path: Path, fake_k8s_sandbox: FakeAgentSandbox) -> Iterator[SessionApi]:
    port = free_port()
    add_pools(fake_k8s_sandbox, port)
    releases = {"releases": [{"name": release, "images": {"*": image}} for release, image in IMAGES.items()],
                "canaryPercent": CANARY_PERCENT}
    starts = sum(WARM_STARTS.values()) + ROLLBACK_STARTS + 2
    for running in dispatcher(tmp_path, fake_k8s_sandbox, port, RELEASES=json.dumps(releases),
                              BOT_CHANNEL_TOKEN=CHANNEL_TOKEN,
                              DISPATCHER_ADMIN_KEYS=ADMIN, TURN_CREDENTIALS_PER_KEY=str(2 * starts),
                              MAX_CONCURRENT_SESSIONS=str(2 * LIVE),
                              RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="8",
                              RELEASE_HEALTH_MIN_CANARY=str(MIN_CANARY), RELEASE_HEALTH_MIN_STABLE=str(MIN_STABLE),
                              # Every pod's bot dials from 127.0.0.1 here; on a cluster each has its own address.
                              BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS="1000",
                              RESERVE_BUFFER="0", RESERVE_BURST="0", BOT_IDENTITY_AUDIENCE=AUDIENCE):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


def filled(fake: FakeAgentSandbox, releases: tuple[str, ...] = (STABLE, CANARY), need: int = 1) -> bool:
    """Every release's pool holds `need` warm Sandboxes whose pod runs and whose bot is on the dispatcher's
    channel (its hello's token reviewed): a pod the controller counts as warm from its start, while its bot
    is still loading, would make a start wait for that bot."""
    return all(sum(fake.pods.get(name, {}).get("status", {}).get("phase") == "Running" and name in fake.reviewed_pods
                   for name in fake.warm(pool_of(release))) >= need for release in releases)


def canary_weight(admin: SessionApi) -> int:
    listed = admin.call("GET", "/releases").json()["releases"]
    return int(next(r for r in listed if r["name"] == CANARY)["weight"])


def ready_on(api: SessionApi, session_id: str) -> str | None:
    """The pod whose bot reported the session `ready`, as the dispatcher's timeline records it, if it did."""
    events = api.call("GET", f"/sessions/{session_id}/timeline").json()["events"]
    return next((str(e["machine_id"]) for e in events if e["event"] == "ready"), None)


def adopted(fake: FakeAgentSandbox, session_id: str) -> dict[str, Any]:
    claim = fake.claims[f"vf-{session_id}"]
    pod = claim["status"]["sandbox"]["name"]
    return {"pool": claim["spec"]["warmPoolRef"]["name"],
            "warm": fake.pods[pod]["metadata"]["labels"].get("agents.x-k8s.io/launch-type") == "warm"}


def test_two_releases_drawn_by_weight_each_start_warm_on_its_pool_and_a_failing_canary_rolled_back_to_no_pool(
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
    api.wait_for("the smoke passed: the canary at 10 %", lambda: canary_weight(admin) == CANARY_PERCENT)
    api.wait_for("each release's pool filled", lambda: filled(fake))
    callers = Callers(api)
    # Each key at its release's share's edge; the canary's among the stable's.
    keys = [(release, key) for release, n in WARM_STARTS.items()
            for key in keys_at_the_edge(CANARY_PERCENT, release, n, f"warm-{release}")]
    keys = keys[2:6] + keys[:2] + keys[6:]
    started: dict[str, str] = {}  # session → its release, as drawn

    def start_warm(release_and_key: tuple[str, str]) -> None:
        release, key = release_and_key
        callers.wait_for_a_line()
        api.wait_for("each release's pool filled again", lambda: filled(fake, need=STARTERS))
        answer = start_keyed(api, key)
        session_id = answer["session_id"]
        started[session_id] = answer["release"]
        assert answer["release"] == release, (key, answer)  # drawn by the weights in force, with the deployment's key
        assert adopted(fake, session_id) == {"pool": pool_of(release), "warm": True}, (release, session_id)
        callers.hold(session_id)

    with ThreadPoolExecutor(STARTERS) as starters:
        list(starters.map(start_warm, keys))  # the first failure, raised here
    assert sorted(started.values()) == sorted(release for release, _ in keys)
    # Every start warm, in the dispatcher's own record: its bot, ready within its call, was a pod of its
    # release's pool (read as its caller hung up, at the pace of the starts: reads have a rate per key).
    callers.hang_up_in_turn()
    cold = {s: (r, callers.served[s]) for s, r in started.items() if not (callers.served[s] or "").startswith(
        pool_of(r) + "-")}
    assert not cold, cold

    callers.wait_for_a_line()
    api.wait_for("each release's pool filled again", lambda: filled(fake))
    pinned = api.call("POST", "/start?wait=started", (201,), json={"release": CANARY}).json()
    assert pinned["release"] == CANARY
    assert adopted(fake, pinned["session_id"]) == {"pool": pool_of(CANARY), "warm": True}
    callers.hold(pinned["session_id"])

    # A new canary build whose bot() raises as its session begins, given half the traffic: rolled back. Each
    # start's key draws the canary at 50 % only (the stable at 10 %): the new weight is the one drawn with.
    failing = copy.deepcopy(fake.templates[pool_of(CANARY)])
    failing["containers"][0]["env"].append({"name": "STANDIN_FAILS", "value": "1"})
    fake.set_template(pool_of(CANARY), failing)  # Recreate: its warm pods are replaced at once
    admin.call("PUT", f"/releases/{CANARY}", (200,), json={"weight": 50})
    for key in keys_at_the_edge(50, CANARY, ROLLBACK_STARTS, "failing"):
        if canary_weight(admin) == 0:
            break
        callers.wait_for_a_line()
        # Its pool is emptied as the rollback happens: waiting for it to fill would wait for ever.
        api.wait_for("each release's pool filled again, or the canary's emptied", lambda: filled(fake, (STABLE,)) and (
            filled(fake, (CANARY,)) or canary_weight(admin) == 0))
        answer = start_keyed(api, key)
        assert answer["release"] == CANARY or canary_weight(admin) == 0, answer
        callers.hold(answer["session_id"])
    # A stable session its caller stopped, whose bot's own report was lost (a loaded host), is judged only
    # after the judge's last look for that report (dispatcher/sessions/release_watch.py): up to a minute.
    judged = SessionApi(api.running, key=ADMIN, provider="k8s", deadline=DEADLINE + STOPPED_LOOKS_SECONDS[-1])
    judged.wait_for("the canary rolled back by the dispatcher", lambda: canary_weight(admin) == 0)
    api.wait_for("the canary's pool set to 0", lambda: fake.warm_pools[pool_of(CANARY)]["spec"]["replicas"] == 0)
    api.wait_for("its warm pods gone", lambda: not fake.warm(pool_of(CANARY)))
    assert fake.warm_pools[pool_of(STABLE)]["spec"]["replicas"] >= 1  # the stable release keeps its own
    assert "automatic rollback" in json.dumps(admin.call("GET", "/releases/history").json())
    callers.hang_up_all()


class Callers:
    """The callers of the sessions started: each hangs up (DELETE) once its session is HOLD_SECONDS old, on
    a timer of its own, so hang-ups overlap the next starts; at most LIVE sessions run at once (no bot
    process piles up on the machine, none under the dispatcher's session cap)."""

    def __init__(self, api: SessionApi) -> None:
        self._api = api
        self._lines = threading.Semaphore(LIVE)
        self._lock = threading.Lock()
        self._on_the_line: set[str] = set()
        self._timers: list[threading.Timer] = []
        self.failures: list[str] = []
        self.served: dict[str, str | None] = {}  # session → the pod its bot was ready on, read before its hang-up

    def wait_for_a_line(self) -> None:
        """Returns once fewer than LIVE sessions run: the oldest caller has hung up."""
        assert self._lines.acquire(timeout=DEADLINE), f"no caller hung up within {DEADLINE}s: {self.failures}"

    def hold(self, session_id: str) -> None:
        with self._lock:
            self._on_the_line.add(session_id)
        timer = threading.Timer(HOLD_SECONDS, self._hang_up, (session_id,))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def hang_up_in_turn(self) -> None:
        """Every caller on the line hangs up when its session is HOLD_SECONDS old; fails with any that failed."""
        for timer in self._timers:
            timer.join(timeout=HOLD_SECONDS + DEADLINE)
        self._timers.clear()
        assert not self.failures, self.failures

    def hang_up_all(self) -> None:
        """Every caller still on the line hangs up now; fails with any hang-up that did."""
        for timer in self._timers:
            timer.cancel()
        with self._lock:
            left = list(self._on_the_line)
        for session_id in left:
            self._hang_up(session_id)
        for timer in self._timers:
            timer.join(timeout=DEADLINE)
        self._timers.clear()
        assert not self.failures, self.failures

    def _hang_up(self, session_id: str) -> None:
        with self._lock:
            if session_id not in self._on_the_line:
                return  # its timer and `hang_up_all` met: hung up once
            self._on_the_line.discard(session_id)
        try:
            self.served[session_id] = ready_on(self._api, session_id)
            self._api.call("DELETE", f"/sessions/{session_id}", (200, 202, 204, 404))
        except (AssertionError, httpx.HTTPError) as exc:  # a timer's thread: kept for the test to fail on
            self.failures.append(f"{session_id}: {str(exc)[:300]}")
        finally:
            self._lines.release()
