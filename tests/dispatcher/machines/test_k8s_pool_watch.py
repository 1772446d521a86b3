"""A replica holding idle pool bots keeps one watch of voicefleet's SandboxClaims however many it holds
(a watch per idle bot held one of the API client's connections each: a hundred stalled every call),
and a start at another replica still reaches the bot its claim adopted here."""

from __future__ import annotations

from dispatcher.machines.bot_environment import session_assignment
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, warm_running
from tests.dispatcher.machines.test_k8s_sandbox_warm import two_replicas
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.waiting import until

IDLE_BOTS = 150


async def test_a_replica_holding_150_idle_pool_bots_keeps_one_claims_watch_and_a_start_elsewhere_reaches_them(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    async with two_replicas(fake) as (holder, starter):
        add_pool(fake, IDLE_BOTS)
        pods = await warm_running(fake, IDLE_BOTS)
        bots = {pod: holder.dial(fake, pod) for pod in pods}
        await until(lambda: len(holder.channels.idle()) == IDLE_BOTS, "every pool bot idle here", timeout=120)
        await until(lambda: fake.claim_watches.open_watches == 1, "the replica's claims watch", timeout=30)
        assert fake.watches.open_watches == 0  # no pod watched
        [listed] = [c.query for c in fake.calls_to("GET", "/sandboxclaims") if "watch" not in c.query]
        assert listed == {"labelSelector": "voicefleet.io/app=bot"}  # voicefleet's claims, then watched from there
        assert fake.claim_watches.open_watches == 1

        s = spec()
        await starter.start(s)
        await until(lambda: holder.channels.link_for(s.session_id) is not None, "the handed-over bot", timeout=60)
        link = holder.channels.link_for(s.session_id)
        assert link is not None
        assert bots[link.machine_id].assigns()[0]["params"] == session_assignment(s).params()
        assert fake.claims[f"vf-{s.session_id}"]["status"]["sandbox"]["name"] == link.machine_id
        assert len(holder.channels.idle()) == IDLE_BOTS - 1
        await until(lambda: fake.claim_watches.open_watches == 1, "the start's own watch ended; the replica's on",
                    timeout=30)
