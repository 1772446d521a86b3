"""`POST /calls`'s own checks, before any SIP edge is asked (numbers, body, Idempotency-Key, the edge's
settings), and each trunk's pace: the deployment's one bucket (this process's, and with several
replicas a real redis-server's), a call waiting for its turn up to SIP_CALL_MAX_WAIT_SECONDS, past it
refused 429 with the wait."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher.api.auth import LOCAL_CALLER
from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings, TrunkInfo
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.client import DEFAULT_PREFIX
from dispatcher.store.local import LocalCoordination
from dispatcher.store.memory import LocalCreateLimit
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer, redis_server

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE = "http://127.0.0.1:9"
SIGNED = {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential(EDGE)}"}  # the edge's own credential
GOOD = {"to": "+14155550100", "from": "+14155550199", "trunk": "far"}


def listed(calls: TrunkCalls, *trunks: TrunkInfo) -> None:
    """The trunks as an edge of this version listed them just now (it takes a call's stream as a path)."""
    calls._trunks, calls._trunks_at = {t.name: t for t in trunks}, time.monotonic()
    calls.joins_paths = True


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """A keyless local dispatcher whose SIP edge is at a port nothing listens on: every check below is
    made before the edge is asked."""
    app = create_app(Settings(), env={"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client
    await app.state.voicefleet.aclose()


@pytest.mark.parametrize(("change", "where"), [
    ({"to": "4155550100"}, "to"), ({"to": "+0155550100"}, "to"), ({"from": "+1415555010012345"}, "from"),
    ({"trunk": "far away"}, "trunk"), ({"trunk": ""}, "trunk"), ({"extra": 1}, "extra")])
async def test_a_call_with_a_bad_field_is_422_naming_it(api: httpx.AsyncClient, change: dict[str, object],
                                                       where: str) -> None:
    answer = await api.post("/calls", json={**GOOD, **change})
    assert answer.status_code == 422, answer.text
    assert where in answer.text


async def test_a_body_over_the_start_s_bound_is_413(api: httpx.AsyncClient) -> None:
    answer = await api.post("/calls", json={**GOOD, "body": {"notes": "x" * 5000}})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "body_too_large"


async def test_a_bad_idempotency_key_is_400(api: httpx.AsyncClient) -> None:
    answer = await api.post("/calls", json=GOOD, headers={"Idempotency-Key": "k" * 300})
    assert answer.status_code == 400, answer.text


async def test_an_edge_that_cannot_be_reached_is_503_with_retry_after(api: httpx.AsyncClient) -> None:
    answer = await api.post("/calls", json=GOOD)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "sip_edge_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


async def test_a_call_the_edge_never_took_ends_not_placed_and_its_retry_with_the_same_key_places_it_again() -> None:
    """The edge's trunks were listed (kept for TRUNKS_SECONDS), then the edge went away."""
    app = create_app(Settings(), env={"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    calls = app.state.voicefleet.trunk_calls
    listed(calls, TrunkInfo("far", 50.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        for _ in range(2):  # not a replay of the first (a session that never ran): asked of the edge again
            answer = await api.post("/calls", json=GOOD, headers={"Idempotency-Key": "order-7"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "sip_edge_unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
        state = app.state.voicefleet
        session_id = new_session_id(state.auth.by_id(LOCAL_CALLER).owner_key, "call-order-7")
        events = await state.sessions.timeline.read(session_id)
    await app.state.voicefleet.aclose()
    ended = [e for e in events if e["event"] == "ended"]
    # The first try's session ended once, with why; the retry ran in a session of its own
    # (tests/dispatcher/phone/test_call_retry_tries.py).
    assert [e["reason"] for e in ended] == ["not_placed"], events
    assert "SIP edge did not take the request" in ended[0]["detail"]


async def test_a_call_refused_for_its_trunk_s_pace_is_retried_with_the_same_key_as_a_first_try() -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET,
                                      "SIP_CALL_MAX_WAIT_SECONDS": "0"},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    calls = app.state.voicefleet.trunk_calls
    listed(calls, TrunkInfo("far", 0.01))  # a turn a 100 s
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        assert (await api.post("/calls", json=GOOD)).status_code == 503  # took the turn (the edge is away)
        statuses = [(await api.post("/calls", json=GOOD, headers={"Idempotency-Key": "order-8"})).status_code
                    for _ in range(2)]
    await app.state.voicefleet.aclose()
    assert statuses == [429, 429]  # the retry is paced again, not taken for a call in progress


async def test_without_an_edge_post_calls_says_which_settings_to_set() -> None:
    app = create_app(Settings(), env={}, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/calls", json=GOOD)
    await app.state.voicefleet.aclose()
    assert answer.status_code == 503
    assert "SIP_EDGE_URL" in answer.json()["error"]["message"]


async def test_the_edge_s_routes_refuse_a_request_without_its_secret(api: httpx.AsyncClient) -> None:
    for given in ({}, {"Authorization": "Bearer not-the-secret"}):
        answer = await api.post("/edge/calls/abc/outcome", json={"outcome": "busy", "trunk": "far"}, headers=given)
        assert answer.status_code == 401, answer.text
        assert (await api.get("/edge/calls/abc", headers=given)).status_code == 401
        leg = {"event": "answered", "trunk": "far", "direction": "outbound", "usd_per_minute": 0.01}
        assert (await api.post("/edge/calls/abc/bridged", json=leg, headers=given)).status_code == 401


async def test_the_shared_secret_an_older_edge_presents_is_refused_naming_the_way_out(api: httpx.AsyncClient) -> None:
    answer = await api.get("/edge/calls/abc", headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 401, answer.text
    assert "no SIP edge holds any longer" in answer.json()["error"]["message"]
    assert "edge_credential_env" in answer.json()["error"]["message"]


async def test_one_edge_s_credential_drives_no_other_edge_s_call() -> None:
    """Two listed edges: a session whose call the store recorded at edge A takes A's credential, never B's;
    a credential derived for an edge SIP_EDGE_URL does not list is refused, however genuine."""
    a, b = "http://127.0.0.1:9", "http://127.0.0.1:10"
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{a},{b}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    await state.trunk_calls.edges.claim("vf_at_a", a, 600, "token", needed=True)
    secret = EdgeSecret(SECRET)
    as_edge = {url: {"Authorization": f"Bearer {secret.edge_credential(url)}"} for url in (a, b, "http://10.9.9.9:5080")}
    outcome = {"outcome": "busy", "trunk": "far"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        by_b = await api.post("/edge/calls/vf_at_a/outcome", json=outcome, headers=as_edge[b])
        status_by_b = await api.get("/edge/calls/vf_at_a", headers=as_edge[b])
        status_by_a = await api.get("/edge/calls/vf_at_a", headers=as_edge[a])
        unlisted = await api.get("/edge/calls/vf_at_a", headers=as_edge["http://10.9.9.9:5080"])
    await state.aclose()
    assert by_b.status_code == 403 and by_b.json()["error"]["code"] == "sip_edge_not_holding", by_b.text
    assert status_by_b.status_code == 403
    assert status_by_a.status_code == 404, status_by_a.text  # taken as A's: the session itself is unknown here
    assert unlisted.status_code == 403 and "SIP_EDGE_URL" in unlisted.json()["error"]["message"]


async def test_an_answered_calls_end_and_count_are_taken_from_the_edge_holding_it_alone() -> None:
    """An outbound call's SIP end (who hung up, its answered seconds, which price it) comes on the edge's route:
    from the edge the store recorded the call at, never another's, nor a client's key."""
    a, b = "http://127.0.0.1:9", "http://127.0.0.1:10"
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{a},{b}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    await state.trunk_calls.edges.claim("vf_at_a", a, 600, "token", needed=True)
    state.sessions.timeline.note("vf_at_a", "requested")  # its timeline, opened as its call's start opens it
    secret = EdgeSecret(SECRET)
    end = {"by": "callee", "how": "bye", "answered_seconds": 33.25}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        by_b = await api.post("/edge/calls/vf_at_a/sip_end", json=end,
                              headers={"Authorization": f"Bearer {secret.edge_credential(b)}"})
        by_a = await api.post("/edge/calls/vf_at_a/sip_end", json=end,
                              headers={"Authorization": f"Bearer {secret.edge_credential(a)}"})
        await state.sessions.timeline.settled()
        events = await state.sessions.timeline.read("vf_at_a")
    await state.aclose()
    assert by_b.status_code == 403 and by_b.json()["error"]["code"] == "sip_edge_not_holding", by_b.text
    assert by_a.status_code == 204, by_a.text
    assert [{k: e[k] for k in end} for e in events if e["event"] == "sip_ended"] == [end]


async def test_a_bridged_leg_is_taken_from_the_edge_for_a_known_session_only(api: httpx.AsyncClient) -> None:
    signed = SIGNED
    unknown = await api.post("/edge/calls/abc/bridged", json={"event": "ended", "trunk": "far"}, headers=signed)
    assert unknown.status_code == 404, unknown.text
    priced_too_high = {"event": "answered", "trunk": "far", "usd_per_minute": 25.0}
    assert (await api.post("/edge/calls/abc/bridged", json=priced_too_high, headers=signed)).status_code == 422


def test_a_short_edge_secret_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="SIP_EDGE_SECRET must be at least 32"):
        TrunkCallSettings.from_env({"SIP_EDGE_URL": "http://edge:5080", "SIP_EDGE_SECRET": "short"})


class SteppedBuckets:
    """The store's real bucket (`LocalCreateLimit`) read by a clock the test steps: what a call waits is
    decided by when the test says it came, never by how long a loaded machine took to get there."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._buckets: dict[str, LocalCreateLimit] = {}

    def create_limit(self, name: str, per_second: float, burst: int) -> LocalCreateLimit:
        return self._buckets.setdefault(name, LocalCreateLimit(per_second, burst, lambda: self.now))


async def test_a_trunk_s_calls_wait_for_its_pace_and_one_past_the_bound_is_refused_with_the_wait() -> None:
    buckets = SteppedBuckets()
    calls = TrunkCalls(TrunkCallSettings(("http://127.0.0.1:9",), SECRET, max_wait_seconds=0.6), buckets,
                       LocalCoordination().key_holders, max_session_seconds=1800, transfer_seconds=3600)
    trunk = TrunkInfo("far", cps=2.0)  # a turn every 0.5 s
    try:
        assert (await calls.pace(trunk)).wait == 0  # the first goes at once
        buckets.now += 0.1
        began = time.monotonic()
        waited = (await calls.pace(trunk)).wait  # the next, 0.1 s later, waits the rest of the turn
        assert waited == pytest.approx(0.4)
        assert time.monotonic() - began >= 0.3  # and really waited it
        buckets.now += 0.4  # its turn
        # Two at once: one takes the next turn (0.5 s), the other's (1 s) is past the bound.
        results = await asyncio.gather(calls.pace(trunk), calls.pace(trunk), return_exceptions=True)
        refused = [r for r in results if isinstance(r, ApiError)]
        assert len(refused) == 1 and refused[0].status == 429, results
        assert refused[0].retry_after == 1
        assert "would wait 1.0 s" in refused[0].message
        assert (await calls.pace(TrunkInfo("other", cps=2.0))).wait == 0  # each trunk has its own pace
    finally:
        await calls.aclose()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


async def test_two_replicas_pace_a_trunk_s_calls_from_one_bucket_in_the_store(redis: RedisServer) -> None:
    """Two replicas on one real redis-server: a trunk of 0.1 calls a second lets one call through
    between them, however the calls are spread, and refuses the other with the wait (about 10 s)."""
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    replicas = [RedisCoordination(settings_for(redis, name, prefix)) for name in ("r-a", "r-b")]
    calls = [TrunkCalls(TrunkCallSettings(("http://127.0.0.1:9",), SECRET, max_wait_seconds=1.0), c, c.key_holders,
                        max_session_seconds=1800, transfer_seconds=3600) for c in replicas]
    trunk = TrunkInfo("twilio", cps=0.1)
    try:
        began = time.monotonic()
        assert (await calls[0].pace(trunk)).wait == 0
        with pytest.raises(ApiError) as refused:
            await calls[1].pace(trunk)  # the other replica: the same bucket
        between = time.monotonic() - began  # however long a loaded machine took between the two
        assert refused.value.status == 429 and refused.value.retry_after is not None
        assert 10 - between - 0.01 <= refused.value.retry_after <= 10, (refused.value.retry_after, between)
    finally:
        for each in calls:
            await each.aclose()
        for coordination in replicas:
            await coordination.aclose()


async def test_a_key_the_trunk_does_not_name_is_refused_403_before_its_pace_is_spent() -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET,
                                      "SIP_CALL_MAX_WAIT_SECONDS": "0"},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    calls = app.state.voicefleet.trunk_calls
    listed(calls, TrunkInfo("far", 0.01, ("team-a",)), TrunkInfo("ours", 0.01, ("local",)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        refused = [await api.post("/calls", json=GOOD) for _ in range(3)]
        ours = await api.post("/calls", json={**GOOD, "trunk": "ours"})
    await app.state.voicefleet.aclose()
    assert [r.status_code for r in refused] == [403, 403, 403], refused[0].text  # not 429: no turn was taken
    assert "`callers`" in refused[0].json()["error"]["message"] and "'far'" in refused[0].json()["error"]["message"]
    assert ours.status_code == 503  # its own trunk: asked of the edge (away here)
