"""The frozen tier across replicas, piece by piece on a real redis-server (the stack's access rules)
and the fake Fly API: a thawed bot is admitted again at whichever replica it dials, once per thaw,
and that replica learns who waits for it; a start with patience counts frozen bots held anywhere
when their resume fits it; the planner's resume is carried out by the replica holding the bot; and
the relay's orders reach the holder (tests/replicas/test_frozen_anywhere.py has it end to end)."""

from __future__ import annotations

import asyncio
import time

from botchannel.contract import Hello, encode
from dispatcher.channel.admission import HelloRules
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.fly.frozen import FlyFrozenMachines
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve import elsewhere
from dispatcher.reserve.idle import FrozenBot
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.claims import BotClaims
from dispatcher.store.coordination import PoolBot, ReplicaPool
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.reserve.test_reserve_frozen import Holder
from tests.dispatcher.reserve.test_reserve_shared import Machines, reserve, server, stores
from tests.fakes.fly import FakeFly
from tests.support.waiting import until

__all__ = ["server", "stores"]
FAR = 2_000_000_000  # a credential's expiry (Unix seconds)


def hello(bot_id: str, image: str = "img") -> Hello:
    return Hello(bot_id, image=image, capabilities=("webrtc",))


class BotSocket:
    """A bot's end of the channel: its hello, then silence until it hangs up."""

    def __init__(self, first: Hello) -> None:
        self._frames = [encode(first)]
        self.closed = asyncio.Event()

    async def send_text(self, data: str) -> None:
        pass

    async def receive_text(self) -> str:
        if self._frames:
            return self._frames.pop(0)
        await self.closed.wait()
        raise ConnectionError("the bot hung up")

    async def close(self, code: int = 1000) -> None:
        self.closed.set()


async def test_a_thawed_bot_is_admitted_again_once_at_whichever_replica_it_dials(stores) -> None:
    """Its first idle hello was at r-0; thawed by r-1's claim, it dials r-2 (a load balancer chose):
    admitted there once, and r-2 learns that r-1 waits for it. Without a thaw, or twice, refused."""
    first, other = stores
    grant = BotGrant("idle", "rsv-7", FAR)
    at_first = HelloRules(RedisCoordination(first.settings).claims)
    at_other = HelloRules(RedisCoordination(other.settings).claims)
    assert await at_first.refusal(grant, hello("rsv-7")) is None  # its one idle hello, at r-0
    assert await at_other.refusal(grant, hello("rsv-7")) is not None  # nothing thawed it

    await BotClaims(first).expect_back("rsv-7", "claim:r-1", 10)  # r-1 thaws it for a claim
    assert await at_other.refusal(grant, hello("rsv-7")) is None
    assert at_other.thawed_for("rsv-7") == "claim:r-1"
    assert await at_other.refusal(grant, hello("rsv-7")) == "credential already used"  # once per thaw
    assert await at_first.refusal(grant, hello("rsv-7")) == "credential already used"
    assert await BotClaims(first).welcome_back("rsv-7") is None  # the thaw's deadline finds it spent


async def test_a_frozen_bot_held_at_another_replica_counts_for_a_patient_start_when_its_resume_fits(stores) -> None:
    """A caller's `maxWaitSeconds` is met by a frozen bot anywhere whose resume is quoted within it."""
    here, there = stores
    asking = reserve(here, Machines(), [1000.0])
    holder = RedisCoordination(there.settings)
    try:
        assert not await asking.can_claim("webrtc", 5.0)  # nothing anywhere
        await holder.pool.publish(ReplicaPool("r-1", (PoolBot("rsv-9", "frozen", 999.0, "img", ("webrtc",)),)))
        resume = asking.sizer.resume.quote()
        assert await asking.can_claim("webrtc", resume + 0.1)
        assert not await asking.can_claim("webrtc", resume - 0.1)  # it would not be ready in time
        assert not await asking.can_claim("daily", resume + 0.1)  # that bot cannot serve a Daily session
    finally:
        await holder.aclose()


async def test_a_frozen_bot_held_here_counts_for_a_patient_start(fake_fly: FakeFly) -> None:
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url="ws://10.0.0.2/bots/channel")
    coordination = LocalCoordination()
    channels = BotChannels(None, claims=coordination.claims, identity=Unverified("test"))
    held = Reserve(ReserveSettings(min_idle=1, buffer=0.0, burst=0.0), machines, channels,
                   ReserveMetrics(Metrics("fly").registry, "fly"), coordination=coordination)
    try:
        assert not await held.can_claim("webrtc", 5.0)
        held.idle_records.froze(FrozenBot("rsv-1", time.monotonic(), machines.bot_image, ("webrtc",), FAR))
        assert await held.can_claim("webrtc", 5.0)
        assert not await held.can_claim("webrtc", 0.01)
    finally:
        await held.aclose()
        await machines.aclose()


async def test_the_planners_resume_thaws_a_frozen_bot_where_it_is_held(fake_fly: FakeFly) -> None:
    """One bot kept hot, the only one frozen: the plan resumes it, and the holder thaws its machine
    (published as `resuming` until it dials in)."""
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url="ws://10.0.0.2/bots/channel")
    coordination = LocalCoordination()
    channels = BotChannels(None, claims=coordination.claims, identity=Unverified("test"))
    held = Reserve(ReserveSettings(min_idle=1, buffer=0.0, burst=0.0), machines, channels,
                   ReserveMetrics(Metrics("fly").registry, "fly"), coordination=coordination,
                   planner=PlannerSettings(min_hot=1))
    try:
        await machines.launch_idle("rsv-1")
        fake_fly.set_state("vf-idle-rsv-1", "started")  # its bot booted
        await machines.freeze("rsv-1")
        [machine] = [m for m in fake_fly.machines.values() if m["name"] == "vf-idle-rsv-1"]
        assert machine["state"] == "suspended"
        held.idle_records.froze(FrozenBot("rsv-1", time.monotonic(), machines.bot_image, ("webrtc",), FAR))
        grant = BotGrant("idle", "rsv-1", FAR)
        await channels.rules.refusal(grant, hello("rsv-1", machines.bot_image))  # its first hello, long ago
        await held.refill()
        await until(lambda: machine["state"] == "started", "the frozen machine resumed, no claim asking for it")
        await held.refill()  # published: resuming, not frozen (the planner orders no second resume)
        [view] = await coordination.pool.views()
        assert [(b.bot_id, b.state) for b in view.bots] == [("rsv-1", "resuming")]

        socket = BotSocket(hello("rsv-1", machines.bot_image))  # the resumed bot dials again
        serving = asyncio.create_task(channels.serve(socket, grant))
        await until(lambda: [link.machine_id for link in channels.idle()] == ["rsv-1"], "the bot hot again")
        await held.refill()
        [view] = await coordination.pool.views()
        assert [(b.bot_id, b.state) for b in view.bots] == [("rsv-1", "idle")]  # hot, where it dialled
        assert machine["state"] == "started"  # not retired
        socket.closed.set()
        await serving
    finally:
        await held.aclose()
        await machines.aclose()


async def test_the_relay_carries_a_thaw_anywhere_to_the_replica_holding_the_bot() -> None:
    """A start elsewhere takes a frozen record off its holder; the replica a thawed bot dialled tells
    its thawer, which claims that very bot there; the planner's resume reaches the holder."""
    holder = Holder()
    assert await elsewhere.answer(holder, "s-1", elsewhere.TAKE_FROZEN, {"image": "img", "transport": "webrtc"}) == {
        "bot_id": "rsv-cold", "expires": 1_900_000_000}
    assert await elsewhere.answer(holder, "rsv-cold", elsewhere.BACK, {"bot_id": "rsv-cold", "replica": "r-2"}) == {
        "wanted": True}
    assert await elsewhere.answer(holder, "rsv-2", elsewhere.RESUME, {"bot_id": "rsv-2"}) == {"resumed": True}
    spec = LaunchSpec(session_id="s-1", body_digest="d", max_session_seconds=60, body={})
    claimed = {**elsewhere.spec_params(spec), "bot_id": "rsv-cold"}
    assert await elsewhere.answer(holder, "s-1", elsewhere.CLAIM, claimed) == {"machine": None}
    assert holder.orders == [("take_frozen", "img/webrtc"), ("back", "rsv-cold@r-2"), ("resume", "rsv-2"),
                             ("claim_returned", "rsv-cold/s-1")]
    for method, params in ((elsewhere.TAKE_FROZEN, {"image": "img"}), (elsewhere.BACK, {"bot_id": "rsv-cold"}),
                           (elsewhere.CLAIM, {**elsewhere.spec_params(spec), "bot_id": 7})):
        try:
            await elsewhere.answer(holder, "s-1", method, params)
        except ApiError as refused:
            assert refused.status == 400
        else:
            raise AssertionError(f"{method} with {params} was not refused")
