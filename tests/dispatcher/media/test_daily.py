"""The Daily client against the fake Daily API: rooms, self-signed tokens, presence, retries."""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import AsyncIterator

import pytest

from dispatcher.media.daily import DailyError, DailyRooms, DailySettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError
from tests.fakes.daily import API_KEY, DOMAIN_ID, DOMAIN_NAME, FakeDaily

SID = "0123456789abcdef01234567"


@pytest.fixture
async def rooms(fake_daily: FakeDaily) -> AsyncIterator[DailyRooms]:
    settings = DailySettings.from_env(fake_daily.env)
    client = DailyRooms(settings)
    yield client
    await client.aclose()


def test_settings_name_the_missing_api_key() -> None:
    with pytest.raises(SettingsError, match="DAILY_API_KEY"):
        DailySettings.from_env({})


def test_settings_never_show_the_api_key() -> None:
    assert API_KEY not in repr(DailySettings.from_env({"DAILY_API_KEY": API_KEY}))


async def test_room_is_named_from_the_session_id(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    grant = await rooms.grant(SID, 600)
    await rooms.create(SID, 600)
    assert grant.room_url == f"https://{DOMAIN_NAME}.daily.co/vf-{SID}"
    assert list(fake_daily.rooms) == [f"vf-{SID}"]


async def test_room_is_private_and_ejects_everyone_at_its_expiry(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    before = int(time.time())
    await rooms.create(SID, 600)
    room = fake_daily.rooms[f"vf-{SID}"]
    assert room["privacy"] == "private"
    assert room["config"]["eject_at_room_exp"] is True
    assert before + 600 < room["config"]["exp"] <= before + 600 + 600 + 2
    assert room["config"]["enable_prejoin_ui"] is False  # the bot and the caller's app join straight in


async def test_grant_makes_no_api_call_once_the_domain_is_known(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    await rooms.grant(SID, 600)
    calls = len(fake_daily.calls)
    await rooms.grant("f" * 24, 600)
    await rooms.grant("e" * 24, 600)
    assert len(fake_daily.calls) == calls == 1  # the one `GET /` for the domain config


async def test_tokens_are_signed_with_the_api_key_for_this_room(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    grant = await rooms.grant(SID, 600)
    for token in (grant.bot_token, grant.user_token):
        claims = fake_daily.verify_token(token)
        assert claims["r"] == f"vf-{SID}"
        assert claims["d"] == DOMAIN_ID


async def test_user_token_is_never_a_room_owner(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    grant = await rooms.grant(SID, 600)
    assert fake_daily.verify_token(grant.user_token)["o"] is False


async def test_tokens_eject_after_the_max_session(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    grant = await rooms.grant(SID, 900)
    assert fake_daily.verify_token(grant.bot_token)["eje"] == 900
    assert fake_daily.verify_token(grant.user_token)["eje"] == 900


async def test_tokens_only_allow_joining_within_a_short_window(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    now = int(time.time())
    claims = fake_daily.verify_token((await rooms.grant(SID, 3600)).user_token)
    assert claims["nbf"] <= now <= claims["iat"] + 1
    assert now < claims["exp"] <= now + 300 + 1
    assert claims["iat"] - claims["nbf"] == 30  # docs/providers.md: a client clock 30 s behind can join


async def test_creating_an_existing_room_is_success(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    await rooms.create(SID, 600)
    await rooms.create(SID, 600)
    assert len(fake_daily.calls_to("POST", "/rooms")) == 2
    assert len(fake_daily.rooms) == 1


async def test_throttled_create_is_retried_after_retry_after(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.fail(429, times=2, retry_after=0.1, path_contains="/rooms")
    started = time.monotonic()
    await rooms.create(SID, 600)
    assert time.monotonic() - started >= 0.2
    assert f"vf-{SID}" in fake_daily.rooms


async def test_persistent_throttling_gives_up_with_a_retry_hint(fake_daily: FakeDaily) -> None:
    settings = DailySettings.from_env(
        {**fake_daily.env, "DAILY_RETRY_DEADLINE_SECONDS": "0.5"}
    )
    rooms = DailyRooms(settings)
    fake_daily.fail(429, times=100, retry_after=0.2, path_contains="/rooms")
    with pytest.raises(DailyError) as caught:
        await rooms.create(SID, 600)
    await rooms.aclose()
    assert caught.value.reason == "daily_throttled"
    assert caught.value.retry_after == pytest.approx(0.2)


async def test_a_bad_api_key_is_reported_not_retried(fake_daily: FakeDaily) -> None:
    rooms = DailyRooms(DailySettings.from_env({"DAILY_API_KEY": "wrong", "DAILY_API_URL": fake_daily.url}))
    with pytest.raises(DailyError) as caught:
        await rooms.grant(SID, 600)
    await rooms.aclose()
    assert caught.value.reason == "daily_unauthorized"  # as for every provider: the operator must act
    assert len(fake_daily.calls) == 1


async def test_bot_presence_follows_the_room(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    await rooms.create(SID, 600)
    assert await rooms.bot_present(SID) is False
    fake_daily.join(f"vf-{SID}", f"user-{SID}")
    assert await rooms.bot_present(SID) is False  # the caller is not the bot
    fake_daily.join(f"vf-{SID}", f"bot-{SID}")
    assert await rooms.bot_present(SID) is True


async def test_no_bot_is_present_in_a_missing_room(rooms: DailyRooms) -> None:
    assert await rooms.bot_present(SID) is False


async def test_delete_ends_the_room_and_is_idempotent(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    await rooms.create(SID, 600)
    await rooms.delete(SID)
    await rooms.delete(SID)
    assert fake_daily.rooms == {}


async def test_client_side_rate_limit_refuses_instead_of_queueing_forever(fake_daily: FakeDaily) -> None:
    settings = DailySettings.from_env(fake_daily.env)
    rooms = DailyRooms(DailySettings(**{**settings.__dict__, "rate": Rate(per_second=1, burst=1, max_wait=0.0)}))
    await rooms.create(SID, 600)
    with pytest.raises(DailyError) as caught:
        await rooms.create("f" * 24, 600)
    await rooms.aclose()
    assert caught.value.reason == "daily_rate_limited"
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


async def test_list_sessions_pages_through_this_deployments_rooms(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    session_ids = [f"{i:024x}" for i in range(105)]  # more than one page of 100
    for session_id in session_ids:
        await rooms.create(session_id, 600)
    fake_daily.rooms["other"] = {"id": "x", "name": "other", "created_at": "2026-01-01T00:00:00Z"}  # not ours
    listed = await rooms.list_sessions()
    assert sorted(r.session_id for r in listed) == session_ids
    assert all(abs(r.created_at - time.time()) < 60 for r in listed)


async def test_each_token_names_its_holder_and_its_own_join_window(fake_daily: FakeDaily) -> None:
    """The bot's token lets it join late (a cold machine), the caller's only briefly; and only the
    bot's token carries the bot's user id, which presence looks for (a user holding it would
    make `joined` a lie)."""
    env = {**fake_daily.env, "DAILY_BOT_JOIN_SECONDS": "700", "DAILY_USER_JOIN_SECONDS": "200"}
    rooms = DailyRooms(DailySettings.from_env(env))
    grant = await rooms.grant(SID, 600)
    await rooms.aclose()
    bot, user = fake_daily.verify_token(grant.bot_token), fake_daily.verify_token(grant.user_token)
    assert (bot["ud"], bot["u"], bot["exp"] - bot["iat"]) == (rooms.bot_user_id(SID), "bot", 700)
    assert (user["ud"], user["u"], user["exp"] - user["iat"]) == (f"user-{SID}", "user", 200)
    assert user["ud"] != rooms.bot_user_id(SID)


async def test_a_room_holds_the_bot_the_caller_and_one_reconnect(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    await rooms.create(SID, 600)
    assert fake_daily.rooms[f"vf-{SID}"]["config"]["max_participants"] == 3


async def test_closing_the_client_leaves_no_connection_pool_behind(fake_daily: FakeDaily) -> None:
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    await rooms.grant(SID, 60)  # opens the pool
    await rooms.aclose()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del rooms
        gc.collect()  # an unclosed aiohttp session says so when it is collected
    assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []


async def test_a_refused_room_create_is_an_error_unless_the_room_exists(
    rooms: DailyRooms, fake_daily: FakeDaily
) -> None:
    fake_daily.fail(400, method="POST", path_contains="/rooms", body={"error": "invalid-request-error", "info": "no"})
    with pytest.raises(DailyError) as caught:
        await rooms.create(SID, 600)
    assert caught.value.reason == "daily_rejected" and "invalid-request-error: no" in caught.value.message


async def test_a_room_whose_creation_time_cannot_be_read_counts_as_new(
    rooms: DailyRooms, fake_daily: FakeDaily
) -> None:
    await rooms.create(SID, 600)
    fake_daily.rooms[f"vf-{SID}"]["created_at"] = "sometime"
    before = time.time()
    [listed] = await rooms.list_sessions()
    assert listed.created_at >= before  # kept past the reaper's grace, never ended as an old orphan


@pytest.mark.parametrize("name", ["DAILY_BOT_JOIN_SECONDS", "DAILY_USER_JOIN_SECONDS"])
def test_a_join_window_is_at_least_ten_seconds(name: str) -> None:
    env = {"DAILY_API_KEY": "k"}
    settings = DailySettings.from_env({**env, name: "10"})
    assert 10 in (settings.bot_join_seconds, settings.user_join_seconds)
    with pytest.raises(SettingsError, match=name):
        DailySettings.from_env({**env, name: "9"})
