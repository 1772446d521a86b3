"""The channel's hello rules hold across replicas sharing a store (a real redis-server): an idle
credential is admitted once at all of them together, and a claimed reserve bot that dials another
replica (its own drained or died) is admitted there for its own session only, never for a claim
that failed. Both records live no longer than the bot's credential."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import CHANNEL_PATH, Hello
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.errors import ApiError
from dispatcher.settings import Settings
from tests.security.conftest import WAIT, dial
from tests.support.dispatcher_server import in_process
from tests.support.redis_server import RedisServer, redis_server

SECRET = "deployment-secret-" + "x" * 32
LIFETIME = 600  # the idle credentials' life, in seconds


@dataclass
class Replica:
    app: Any
    url: str

    @property
    def channels(self) -> Any:
        return self.app.state.voicefleet.channels

    @property
    def replication(self) -> Any:
        return self.app.state.voicefleet.replication


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica, RedisServer]]:
    with redis_server(tmp_path) as store:
        async with contextlib.AsyncExitStack() as running:
            replicas = []
            for name in ("r-a", "r-b"):
                app = create_app(Settings(bot_channel_token=SECRET),
                                 env={**store.env, "REPLICA_ID": name, "RESERVE_MAX_IDLE": "0"}, rooms=None)
                # the test's hellos are its own, from no launched process (tests/support/hand_dialled.py)
                app.state.voicefleet.channels.identity = Unverified("the test dials by hand")
                served = await running.enter_async_context(in_process(app))
                await app.state.voicefleet.replication.start()  # the app's lifespan does this; `serving` runs none
                replicas.append(Replica(app, f"ws://127.0.0.1:{served.port}{CHANNEL_PATH}"))
            yield replicas[0], replicas[1], store


def idle(bot_id: str) -> str:
    return BotCredentials(SECRET).issue("idle", bot_id, LIFETIME)


async def claimed(replica: Replica, bot_id: str, session_id: str) -> Any:
    """`bot_id` dials `replica` idle and is claimed there for `session_id`, as the reserve claims:
    the store's claim record first, then the local binding."""
    ws = await dial(replica.url, idle(bot_id), Hello(machine_id=bot_id, image="dev"))
    assert ws is not None
    channels = replica.channels
    assert await channels.wait_until(lambda: bool(channels.idle()), WAIT)
    link = channels.take_idle()
    assert await replica.replication.coordination.claims.claim(bot_id, session_id, link.expires)
    channels.bind(link, session_id)
    await replica.replication.ownership.settled()  # the owner record is written
    return ws, link


async def owner_of(replica: Replica, session_id: str) -> str | None:
    await replica.replication.ownership.settled()
    owner: str | None = await replica.replication.coordination.owner_records.owner_of(session_id)
    return owner


async def test_an_idle_credential_is_admitted_once_across_replicas(pair) -> None:  # noqa: ANN001
    a, b, _ = pair
    first = await dial(a.url, idle("rsv-1"), Hello(machine_id="rsv-1", image="dev"))
    assert first is not None  # control: the launched bot's first hello
    assert await dial(b.url, idle("rsv-1"), Hello(machine_id="rsv-1", image="dev")) is None
    assert b.channels.idle() == []
    other = await dial(b.url, idle("rsv-2"), Hello(machine_id="rsv-2", image="dev"))
    assert other is not None  # control: another launched bot is admitted at the other replica
    await first.close()
    await other.close()


async def test_a_claimed_reserve_bot_may_dial_another_replica_for_its_own_session_only(pair) -> None:  # noqa: ANN001
    a, b, _ = pair
    ws, _ = await claimed(a, "rsv-3", "s-claimed")
    await ws.close()  # its replica went away (drained or died)
    assert await dial(b.url, idle("rsv-3"), Hello(machine_id="rsv-3", session_id="s-other")) is None
    again = await dial(b.url, idle("rsv-3"), Hello(machine_id="rsv-3", session_id="s-claimed"))
    assert again is not None
    link = b.channels.link_for("s-claimed")
    assert link is not None and link.machine_id == "rsv-3"
    assert await owner_of(b, "s-claimed") == "r-b"  # the owner record moved with it
    await again.close()
    assert await b.channels.wait_until(lambda: b.channels.link_for("s-claimed") is None, WAIT)
    assert await owner_of(b, "s-claimed") is None  # and its channel's end lets go of it


async def test_a_reserve_bot_whose_claim_failed_is_bound_to_that_session_at_no_replica(pair) -> None:  # noqa: ANN001
    a, b, _ = pair
    ws, link = await claimed(a, "rsv-4", "s-failed")
    assert await owner_of(a, "s-failed") == "r-a"  # control: bound, r-a was its owner
    a.channels.unbind(link, "s-failed")  # the claim failed (refused, unanswered, re-tagging failed)
    assert await owner_of(a, "s-failed") is None  # nothing routes the session to r-a any more
    assert await dial(b.url, idle("rsv-4"), Hello(machine_id="rsv-4", session_id="s-failed")) is None
    cold = await dial(b.url, BotCredentials(SECRET).issue("session", "s-failed", LIFETIME),
                      Hello(machine_id="cold-s-failed", session_id="s-failed"))
    assert cold is not None  # control: the session's cold bot is admitted
    await cold.close()
    await ws.close()


async def test_the_records_live_no_longer_than_the_credential(pair) -> None:  # noqa: ANN001
    a, _, store = pair
    ws, _ = await claimed(a, "rsv-5", "s-5")
    client = store.admin()
    try:
        for record in ("admitted", "claim"):
            keys = client.keys(f"*{record}:rsv-5")
            assert len(keys) == 1, record
            assert 0 < client.ttl(keys[0]) <= LIFETIME, record
    finally:
        client.close()
    await ws.close()


async def test_with_the_store_unreachable_each_replica_goes_by_its_own_records(pair) -> None:  # noqa: ANN001
    a, b, store = pair
    ws, _ = await claimed(a, "rsv-6", "s-6")
    await ws.close()
    store.stop()
    first = await dial(a.url, idle("rsv-7"), Hello(machine_id="rsv-7", image="dev"))
    assert first is not None  # a launched bot is not refused for the store's outage
    assert await dial(a.url, idle("rsv-7"), Hello(machine_id="rsv-7", image="dev")) is None  # still once here
    assert await dial(b.url, idle("rsv-6"), Hello(machine_id="rsv-6", session_id="s-6")) is None  # not vouched for
    again = await dial(a.url, idle("rsv-6"), Hello(machine_id="rsv-6", session_id="s-6"))
    assert again is not None  # control: its own replica bound it
    await first.close()
    await again.close()


async def test_a_replica_never_relays_an_assignment_to_a_bot_it_holds(pair) -> None:  # noqa: ANN001
    a, b, _ = pair
    bot = await dial(a.url, BotCredentials(SECRET).issue("session", "s-8", LIFETIME),
                     Hello(machine_id="cold-s-8", session_id="s-8"))
    assert bot is not None
    assert await owner_of(a, "s-8") == "r-a"  # control: r-a holds the bot, so b relays to it
    with pytest.raises(ApiError) as refused:
        await b.replication.coordination.ask_owner("s-8", "assign", {"session_id": "s-other"}, WAIT)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    await bot.close()
