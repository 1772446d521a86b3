"""A phone call's one-time token opens one call across every replica, not one per replica."""

from __future__ import annotations

import pytest

from dispatcher.phone.access import admit_upgrade, spend_everywhere
from dispatcher.phone.calls import PhoneCalls
from dispatcher.phone.media_links import MediaLinks
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.state import PhoneState
from dispatcher.phone.tokens import CallTokens
from dispatcher.phone.transfer_anywhere import TransfersAnywhere
from dispatcher.phone.transfers import Transfers
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.coordination import OneTimeUse
from dispatcher.store.forgiving import ForgivingOnce
from dispatcher.store.held_places import HeldPlaceRecords
from dispatcher.store.key_sessions import LocalKeySessions
from dispatcher.store.local import LocalCoordination
from dispatcher.store.memory import LocalOnce
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.spent import SpentOnce
from tests.fakes.server import free_port

KEY = b"k" * 32  # the replicas' shared token key (PHONE_TOKEN_SECRET)
URL = "wss://calls.example.com/ws/twilio"


def replica(spent: OneTimeUse) -> PhoneState:
    settings = PhoneSettings(token_key=KEY)
    transfers = Transfers(None, None, None)
    return PhoneState(settings=settings, tokens=CallTokens(KEY),
                      calls=PhoneCalls(None, None, MediaLinks(), None, None, start_wait_seconds=1.0),  # type: ignore[arg-type]
                      spent=spent, webhooks=LocalOnce(), handed=HeldPlaceRecords(LocalKeySessions()),
                      transfers=transfers, handing=TransfersAnywhere(transfers, LocalCoordination()))


async def admit(state: PhoneState, token: str) -> None:
    admitted = admit_upgrade(state.settings, state.tokens, "twilio", token, {}, URL)
    await spend_everywhere(state, admitted)


async def test_the_store_says_first_use_once(store: Store) -> None:
    spent = SpentOnce(store)
    assert await spent.first_use("t1", 60) is True
    assert await spent.first_use("t1", 60) is False
    assert await spent.first_use("t2", 60) is True  # another token is its own


async def test_a_token_that_opened_a_call_at_one_replica_opens_none_at_another(
    replica_pair: tuple[RedisCoordination, RedisCoordination],
) -> None:
    a, b = (replica(coordination.spent) for coordination in replica_pair)
    token, _ = a.tokens.mint("twilio")
    await admit(a, token)
    with pytest.raises(Exception) as refused:
        await admit(b, token)  # b's own memory has never seen it: only the store can say
    assert getattr(refused.value, "reason", None) == "token_replayed"
    fresh, _ = a.tokens.mint("twilio")
    await admit(b, fresh)  # the positive control: a token no replica has used opens its call at b


async def test_without_a_store_answering_a_token_is_still_checked_at_its_replica() -> None:
    down = Store(StoreSettings(url=f"redis://127.0.0.1:{free_port()}/0", replica_id="r-x", prefix="{t}:",
                               timeout_seconds=1.0))  # type: ignore[call-arg]
    try:
        state = replica(ForgivingOnce(SpentOnce(down), LocalOnce()))
        token, _ = state.tokens.mint("twilio")
        await admit(state, token)  # the store is down: accepted, the replica's own memory keeps it
        with pytest.raises(Exception) as refused:
            await admit(state, token)
        assert getattr(refused.value, "reason", None) == "token_replayed"
    finally:
        await down.aclose()


def test_a_dispatcher_with_a_store_spends_call_tokens_there_and_one_without_keeps_them_itself() -> None:
    from dispatcher.app import create_app

    env = {"DISPATCHER_API_KEYS": "k" * 32, "REDIS_URL": f"redis://:pw@127.0.0.1:{free_port()}/0", "REPLICA_ID": "r-a",
           "REDIS_MESSAGE_SECRET": "m" * 32, "RESERVE_MAX_IDLE": "0"}
    # No connection until it serves.
    assert isinstance(create_app(env=env).state.voicefleet.phone.spent, ForgivingOnce)
    alone = {k: v for k, v in env.items() if not k.startswith(("REDIS_", "REPLICA_ID"))}
    assert isinstance(create_app(env=alone).state.voicefleet.phone.spent, LocalOnce)


async def test_a_handed_calls_token_gives_its_place_back_when_it_opens_its_call_at_any_replica(
    replica_pair: tuple[RedisCoordination, RedisCoordination],
) -> None:
    (a_store, b_store), places = replica_pair, replica_pair[0].held_places
    a, b = replica(a_store.spent), replica(b_store.spent)
    b.handed = b_store.held_places  # the region's places, in its store: the same at both replicas
    token, grant = a.tokens.mint("twilio", handed_from=("eu", "at_capacity"))
    assert await places.hold(grant.token_id, 2, 60.0) and await places.held() == 1
    await admit(b, token)  # the call's session counts under the cap itself from now on
    assert await places.held() == 0
