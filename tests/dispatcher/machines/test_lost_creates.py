"""A create whose answer arrives after the call's timeout, on every cloud provider against its fake:
a refused start leaves no machine, however late the create lands; one whose machine is there when
the launch looks is adopted (dispatcher/machines/lost_creates.py).

The provider's looks are made quick (a test seam on `lost`), the late answer is a held call the
test releases: nothing here races a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dispatcher.errors import ApiError
from dispatcher.machines.base import Machine, Machines, MachinesError
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.client import StoreSettings
from dispatcher.store.coordination import Coordination
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.machines.conftest import PROVIDERS
from tests.dispatcher.machines.harness import Harness
from tests.dispatcher.machines.test_contract import spec
from tests.support.waiting import within

# Per provider: its call timeout setting, short, so a held create gives up quickly.
TIMEOUTS = {"ecs": ("ECS_READ_TIMEOUT_SECONDS", "1"), "gce": ("GCE_TIMEOUT_SECONDS", "0.5"),
            "fly": ("FLY_TIMEOUT_SECONDS", "0.5"), "cloudrun": ("CLOUDRUN_TIMEOUT_SECONDS", "0.5"),
            "modal": ("MODAL_TIMEOUT_SECONDS", "0.5"), "aci": ("ACI_TIMEOUT_SECONDS", "0.5"),
            "cerebrium": ("CEREBRIUM_TIMEOUT_SECONDS", "0.5"), "k8s": ("K8S_TIMEOUT_SECONDS", "0.5")}
HELD = 10  # more creates than any provider sends for one launch


def quick(harness: Harness) -> Machines:
    name, seconds = TIMEOUTS[harness.name]
    machines = harness.make(**{name: seconds, f"{harness.name.upper()}_RETRY_DEADLINE_SECONDS": "3"})
    lost: LostCreates = machines.lost  # type: ignore[attr-defined]
    lost.look_pauses, lost.watch_pauses = (0.05, 0.1), (0.1,) * 100
    return machines


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest) -> Harness:
    from tests.dispatcher.machines.conftest import harness_for

    return harness_for(request)


async def test_a_create_that_lands_after_its_start_was_refused_leaves_no_machine_unless_the_start_was_retried(
        harness: Harness) -> None:
    """Two starts refused at once, their creates held, then landing. One was never asked for again: its
    machine is removed. The other the client retried (at another replica behind the balancer) after the
    refusal: the machine that appears is that start's to adopt, not the watch's to remove."""
    machines = quick(harness)
    asked: list[tuple[str, float]] = []
    removed, retried = spec(), spec()

    async def retried_since(session_id: str, since: float) -> bool:
        asked.append((session_id, since))
        return session_id == retried.session_id

    machines.lost.retried_since = retried_since  # type: ignore[attr-defined]
    hold = harness.hold_create(2 * HELD)
    try:
        refusals = await asyncio.gather(machines.launch(removed), machines.launch(retried), return_exceptions=True)
        assert [getattr(r, "reason", r) for r in refusals] == [f"{harness.name}_unavailable"] * 2, refusals
        hold.release()  # the held creates land now, after the refusals
        harness.settle()
        # Landing takes the held request's own time to finish (a busy machine's run once read it before then).
        assert await within(lambda: harness.created(removed.session_id) >= 1 or None, 20, interval=0.05) \
            is not None, "the late create made no machine"
        assert await within(lambda: harness.live(removed.session_id) == 0, 20, interval=0.05) is not None, \
            "a refused start's late machine was left running"
        assert await within(lambda: retried.session_id in {sid for sid, _ in asked} or None, 20,
                            interval=0.05) is not None, "the watch never asked whether the start was retried"
        assert harness.live(retried.session_id) >= 1, "a retried start's machine was removed"
    finally:
        hold.release()
        await machines.aclose()


async def test_a_create_that_got_no_answer_then_was_throttled_is_maybe_made_and_its_machine_removed(
        harness: Harness) -> None:
    """The first create is held past the call's timeout and the retries are throttled: that create may
    still land, so the give-up is not "throttled", which made nothing and is answered without a look,
    but `_unavailable`: the launch looks, and the machine the held create makes late is removed.
    (Cloud Run's run and ARM's PUT are never sent again once unanswered: theirs is so at once.)"""
    machines = quick(harness)
    s = spec()
    hold = harness.hold_create(1)
    try:
        launching = asyncio.create_task(machines.launch(s))
        assert await within(lambda: hold.caught == 1, 20, interval=0.02) is not None
        harness.throttle(HELD * HELD)  # every try after the held one
        with pytest.raises(MachinesError) as refused:
            await launching
        assert refused.value.reason == f"{harness.name}_unavailable"
        harness.recover()  # the held create is served now, after the refusal
        harness.settle()
        assert harness.created(s.session_id) >= 1  # the held create did make a machine…
        assert await within(lambda: harness.live(s.session_id) == 0, 20, interval=0.05) is not None  # …removed
    finally:
        hold.release()
        await machines.aclose()

CREATES = {"cloudrun": ("POST", ":run"), "aci": ("PUT", "/containerGroups/")}


@pytest.mark.parametrize("harness", list(CREATES), indirect=True)
async def test_a_create_whose_answer_comes_after_the_timeout_is_adopted_not_sent_again(harness: Harness) -> None:
    """No idempotency key on Cloud Run's run or ARM's PUT: the first create made the machine."""
    machines = quick(harness)
    lost: LostCreates = machines.lost  # type: ignore[attr-defined]
    lost.look_pauses = (0.1,) * 100  # the landed create is seen whenever it lands
    method, path = CREATES[harness.name]
    harness.fake.delay(1.5, times=1, method=method, path_contains=path)  # served after the client gave up
    s = spec()
    try:
        result = await machines.launch(s)
        harness.settle()
        assert result.created and result.machine.state.is_active
        assert len(harness.received(s.session_id)) == harness.created(s.session_id) == 1
        assert harness.live(s.session_id) == 1
    finally:
        await machines.aclose()


@pytest.mark.parametrize("harness", ["k8s", "k8s-sandbox"], indirect=True)
async def test_a_pod_whose_create_answer_was_lost_is_found_by_name_and_is_this_launchs(harness: Harness) -> None:
    """The API server stored the pod (or claim), its answer never came: the retried create is 409
    AlreadyExists (an object's name is unique in its namespace), the launch reads it by its name and,
    its own launch's id on it, reports it created, where a replay's launch reports it found."""
    machines = harness.make(K8S_TIMEOUT_SECONDS="2", K8S_RETRY_DEADLINE_SECONDS="20")
    first, retried = harness.hold_create(1), harness.hold_create(1)
    s = spec()
    launch = asyncio.create_task(machines.launch(s))
    try:
        assert await within(lambda: retried.caught == 1, 30, interval=0.02)  # the first answer was lost
        first.release()  # the first create is stored now; its answer goes to a client long gone
        assert await within(lambda: harness.created(s.session_id) == 1, 30, interval=0.02)
        retried.release()
        result = await asyncio.wait_for(launch, 60)
        assert result.created and result.machine.state.is_active
        conflicts = [c for c in harness.fake.calls_to("POST") if "/tokenreviews" not in c.path and
                     c.json()["metadata"]["name"] == f"vf-{s.session_id}"]
        assert len(conflicts) >= 2 and harness.created(s.session_id) == 1 == harness.live(s.session_id)
        replay = await machines.launch(s)
        assert not replay.created and replay.machine.machine_id == result.machine.machine_id
    finally:
        first.release()
        retried.release()
        await machines.aclose()


def service_on(machines: Machines, coordination: Coordination) -> SessionService:
    """The sessions layer over `machines`, as dispatcher/wiring.py builds it (WebRTC: no rooms)."""
    return SessionService(Settings(machines=machines.name, transports=("webrtc",)), machines, None,
                          Metrics(machines.name), coordination=coordination,
                          timeline=SessionTimeline(coordination.timelines, coordination.replica_id))


@pytest.mark.parametrize("harness", ["fly", "gce"], indirect=True)
async def test_a_late_machine_a_retry_was_answered_with_is_left_running(harness: Harness) -> None:
    """The client retried its refused start with the same Idempotency-Key once the late machine had
    landed: the retry replays that machine (200, the session is on), so the watch must leave it, at
    whichever replica the retry arrived (the watch reads the session's shared timeline)."""
    machines = quick(harness)
    lost: LostCreates = machines.lost  # type: ignore[attr-defined]
    service = service_on(machines, LocalCoordination())
    looking = asyncio.Event()  # the watch's looks wait until the retry has been answered
    looking.set()
    look = lost._status

    async def gated(session_id: str) -> Machine | None:
        await looking.wait()
        return await look(session_id)

    lost._status = gated
    caller = Caller("key-a", b"k" * 32)
    hold = harness.hold_create(HELD)
    try:
        with pytest.raises(ApiError) as refused:
            await service.start(caller=caller, idempotency_key="call-1", body={}, wait=False)
        assert refused.value.code == f"{harness.name}_unavailable"
        session_id = refused.value.extra["session_id"]
        looking.clear()
        hold.release()  # the create lands after the refusal
        harness.settle()
        retried = await service.start(caller=caller, idempotency_key="call-1", body={}, wait=False)
        assert retried.machine.session_id == session_id and retried.machine.state.is_active
        await service.timeline.settled()
        looking.set()
        assert await within(lambda: not lost._watches, 20, interval=0.05)  # the watch has decided
        assert harness.live(session_id) == 1  # the machine the retry was answered with still runs
    finally:
        hold.release()
        looking.set()
        await service.aclose()
        await machines.aclose()


@pytest.mark.parametrize("harness", ["fly"], indirect=True)
async def test_with_the_store_down_a_late_machine_is_kept_for_a_retry_the_watch_cannot_see(harness: Harness) -> None:
    """The store does not answer: a retry at another replica went on cold (a cloud launch is
    idempotent) and noted its start in that replica's memory, so whether the session was asked for
    again cannot be told here. The watch keeps the machine (the reaper bounds it) rather than read
    this replica's memory, which knows only its own refused start, as the deployment's answer."""
    machines = quick(harness)
    lost: LostCreates = machines.lost  # type: ignore[attr-defined]
    down = RedisCoordination(StoreSettings(url="redis://127.0.0.1:9/0", timeout_seconds=0.2,
                                           message_secret="m" * 32))  # nothing listens there
    service = service_on(machines, down)
    hold = harness.hold_create(HELD)
    try:
        with pytest.raises(ApiError) as refused:
            await service.start(caller=Caller("key-a", b"k" * 32), idempotency_key="call-1", body={}, wait=False)
        assert refused.value.code == f"{harness.name}_unavailable"
        session_id = refused.value.extra["session_id"]
        hold.release()  # the create lands after the refusal
        harness.settle()
        assert await within(lambda: not lost._watches, 20, interval=0.05)  # the watch has decided
        assert harness.live(session_id) == 1
    finally:
        hold.release()
        await service.aclose()
        await machines.aclose()
        await down.aclose()


# Per provider whose create is resent after a lost answer and answered 409 (the name taken): its create
# call, and the look-up of the session's machine that follows the 409 (Fly: a list of the app).
CONFLICTS: dict[str, tuple[dict[str, str], Callable[[str], dict[str, str]]]] = {
    "fly": ({"method": "POST", "path_suffix": "/machines"}, lambda sid: {"method": "GET", "path_suffix": "/machines"}),
    "k8s": ({"method": "POST", "path_suffix": "/pods"}, lambda sid: {"method": "GET", "path_suffix": f"/vf-{sid}"}),
}


@pytest.fixture(params=sorted(CONFLICTS))
def conflicted(request: pytest.FixtureRequest) -> Harness:
    from tests.dispatcher.machines.conftest import harness_for

    return harness_for(request)


async def test_a_409_after_a_lost_create_whose_machine_could_not_be_looked_up_is_maybe_made_and_removed(
        conflicted: Harness) -> None:
    """The first create is served but its answer lost (the client timed out); the retry's 409 proves
    the session's machine exists, but the look-up that would find it is throttled (Fly's lists are
    1/s per app, deployment-wide). Refused with a reason read as "made nothing" (`_throttled`,
    `_conflict`), nothing looked for it or removed it: the machine ran unwatched. The refusal is
    `_unavailable`, so the launch looks, and the watch removes the machine once it can see it."""
    harness, (create, read) = conflicted, CONFLICTS[conflicted.name]
    machines = quick(harness)
    fake, s = harness.fake, spec()
    hold = fake.hold(times=1, **create)
    try:
        launching = asyncio.create_task(machines.launch(s))
        assert await within(lambda: hold.caught == 1, 20, interval=0.02) is not None
        fake.delay(0.3, times=1, **create)  # the retry lands after the held create
        fake.fail(429, times=10_000, retry_after=0.05, **read(s.session_id))  # its look-ups throttled
        await asyncio.sleep(0.55)  # the client gave up on the first create
        hold.release()  # ... which the provider serves now: the machine exists
        with pytest.raises(MachinesError) as refused:
            await launching
        assert len(fake.calls_to("POST")) >= 2 and refused.value.reason == f"{harness.name}_unavailable", refused.value
        assert harness.live(s.session_id) == 1  # the first create made the machine
        harness.recover()  # the look-ups answer again
        assert await within(lambda: harness.live(s.session_id) == 0, 20, interval=0.05) is not None, \
            "a refused start's machine runs unwatched"
    finally:
        hold.release()
        await machines.aclose()


async def test_a_relaunch_that_made_nothing_still_watches_for_the_earlier_lost_creates_machine() -> None:
    """The first create's answer was lost; the client's retry finds the API server unreachable a moment (a create
    never sent: it made nothing). The retry stopped the first one's watch, so it takes it over: the pod the first
    create makes late is removed, not left running for a start that was refused twice."""
    from dispatcher.machines.base import LaunchResult, MachineState

    made: dict[str, Machine] = {}
    stopped: list[str] = []

    async def status(session_id: str) -> Machine | None:
        return made.get(session_id)

    async def stop(session_id: str) -> bool:
        stopped.append(session_id)
        made.pop(session_id, None)
        return True

    lost = LostCreates(status, stop)
    lost.look_pauses, lost.watch_pauses = (0.01,), (0.05,) * 20

    async def answer_lost() -> LaunchResult:
        raise MachinesError("k8s_unavailable", "POST: no answer within the timeout", retry_after=1.0)

    async def never_connected() -> LaunchResult:
        raise MachinesError("k8s_unavailable", "POST: connection refused", retry_after=1.0, nothing_sent=True)

    with pytest.raises(MachinesError):
        await lost.create("s1", answer_lost)
    with pytest.raises(MachinesError):
        await lost.create("s1", never_connected)
    made["s1"] = Machine(session_id="s1", machine_id="pod-s1", state=MachineState.STARTING, created_at=0.0,
                         body_digest="d")  # the first create's pod lands
    assert await within(lambda: stopped == ["s1"], timeout=10), stopped
    await lost.aclose()
