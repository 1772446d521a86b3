"""The real bot on the control channel: it dials out, listens on nothing, serves one session ever."""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from bot.channel_session import RECONNECT_DELAYS_SECONDS
from botchannel.contract import CHANNEL_PATH, FIRST_DIAL_DELAYS_SECONDS
from dispatcher.app import create_app
from dispatcher.channel.bots import BotRequestFailed
from dispatcher.channel.credentials import BotCredentials
from dispatcher.settings import Settings
from tests.bot.conftest import READY_TIMEOUT, REPO, bot_env
from tests.support.dispatcher_server import serving
from tests.support.hand_dialled import hand_dialled
from tests.support.ports import free_port
from tests.support.processes import listening_sockets
from tests.support.webrtc_client import WebRTCClient

TOKEN = "b" * 40  # the deployment secret: the dispatcher's alone


def reserve_env(url: str, machine_id: str = "rsv-1", **extra: str) -> dict[str, str]:
    """A reserve bot's environment, with the credential the dispatcher issues the machine it
    launches as `machine_id` (never the deployment secret)."""
    credential = BotCredentials(TOKEN).issue("idle", machine_id, 600)
    return bot_env(BOT_CHANNEL_URL=url, BOT_CHANNEL_TOKEN=credential, BOT_MACHINE_ID=machine_id, **extra)


@pytest.fixture
async def dispatcher():
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    async with serving(app) as port:
        yield app.state.voicefleet.channels, f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    await app.state.voicefleet.aclose()


async def wait_idle(channels, timeout: float = READY_TIMEOUT):
    async with channels._changed:
        await asyncio.wait_for(channels._changed.wait_for(lambda: channels.idle()), timeout)
    return channels.idle()[0]


async def test_a_reserve_bot_dials_until_the_dispatcher_answers_listens_on_nothing_and_serves_one_session(spawn_bot):
    """One reserve bot's life: nothing answers its first dials (a new Cloud Run task's egress can take 30 s
    and more), so it dials again with backoff and is on the channel once the dispatcher answers; it
    listens on nothing, takes exactly one session, and after its channel drops in that session it dials
    again and is routed by the session it serves."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    bot = spawn_bot(env=reserve_env(url, "reserve-1"), wait_ready=False)
    assert await failed_dials(bot, 3) == ["first dial"] * 3, "the reserve bot gave up on its first dial"
    assert bot.proc.poll() is None, "the reserve bot gave up on its first dial"
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    channels = app.state.voicefleet.channels
    try:
        async with serving(app, port=port):
            await serves_one_session(bot, channels)
    finally:
        await app.state.voicefleet.aclose()


async def serves_one_session(bot, channels) -> None:
    idle = await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)
    assert idle["machine_id"] == "reserve-1"
    link = await wait_idle(channels, READY_TIMEOUT + 30)
    assert (link.machine_id, link.hello.capabilities) == ("reserve-1", ("webrtc", "websocket"))  # phone calls too
    assert listening_sockets(bot.proc.pid) == []  # no TCP listener, not even loopback

    with pytest.raises(BotRequestFailed) as early:
        await link.request("webrtc.offer", {"sdp": "v=0", "type": "offer"})
    assert early.value.code == "not_assigned"

    channels.bind(channels.take_idle(), "s-one")  # as a claim does
    # It takes its TURN credentials with the assignment and checks them: relay-only with no TURN is refused.
    params = {"session_id": "s-one", "max_session_seconds": 60, "body": {"lang": "en"}, "transport": "webrtc"}
    no_turn = {"iceServers": [{"urls": ["stun:192.0.2.10:3478"]}], "iceTransportPolicy": "relay"}
    with pytest.raises(BotRequestFailed) as refused:
        await link.request("assign", {**params, "ice_config": no_turn})
    assert (refused.value.status, refused.value.code) == (400, "invalid_ice_config"), "relay without TURN taken"
    relay = {
        "iceServers": [{"urls": ["turn:192.0.2.10:3478"], "username": "1:s-one:bot", "credential": "c"}],
        "iceTransportPolicy": "relay",
    }
    assert (await link.request("assign", {**params, "ice_config": relay}))["session_id"] == "s-one"
    ready = await asyncio.to_thread(bot.next_event, "ready", READY_TIMEOUT)
    assert ready["session_id"] == "s-one" and "port" not in ready
    with pytest.raises(BotRequestFailed) as second:
        await link.request("assign", {**params, "session_id": "s-two"})
    assert (second.value.status, second.value.code) == (409, "already_assigned")
    with pytest.raises(BotRequestFailed) as frozen:
        await link.request("freeze", {})
    assert (frozen.value.status, frozen.value.code) == (409, "not_idle"), "only an idle reserve bot is frozen"

    with pytest.raises(BotRequestFailed) as bad:
        await link.request("webrtc.offer", {"sdp": "v=0", "type": "offer"})
    assert (bad.value.status, bad.value.code) == (400, "invalid_offer")  # the HTTP route's checks, same answer
    assert listening_sockets(bot.proc.pid) == []

    await link.socket.close()  # a dispatcher restart or deploy, mid-session
    assert await channels.wait_until(lambda: (new := channels.link_for("s-one")) is not None and new is not link,
                                     READY_TIMEOUT)
    again = channels.link_for("s-one")
    assert again.hello.session_id == "s-one"  # it says which session it serves
    with pytest.raises(BotRequestFailed) as after_redial:
        await again.request("webrtc.offer", {"sdp": "v=0", "type": "offer"})
    assert after_redial.value.code == "invalid_offer"  # the session's signalling works again
    assert bot.proc.poll() is None  # the session went on


async def test_a_reserve_bot_whose_channel_drops_exits(dispatcher, spawn_bot):
    channels, url = dispatcher
    bot = spawn_bot(env=reserve_env(url), wait_ready=False)
    await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)
    link = await wait_idle(channels)
    await link.socket.close()  # the dispatcher side goes away
    ended = await asyncio.to_thread(bot.next_event, "ended", READY_TIMEOUT)
    assert ended["reason"] == "channel_lost"
    assert await asyncio.to_thread(bot.wait, 10) == 3


@pytest.mark.parametrize("launched", [{}, {"VOICEFLEET_SESSION_ID": "s-wrong", "BOT_TRANSPORT": "daily"}],
                         ids=["reserve", "cold"])
async def test_a_bot_with_a_wrong_credential_exits_without_serving(dispatcher, spawn_bot, launched):
    _, url = dispatcher
    bot = spawn_bot(env=bot_env(BOT_CHANNEL_URL=url, BOT_CHANNEL_TOKEN="wrong" * 8, **launched), wait_ready=False)
    ended = await asyncio.to_thread(bot.next_event, "ended", READY_TIMEOUT)
    assert ended["reason"] == "channel_lost" and "403" in ended["detail"]
    assert await asyncio.to_thread(bot.wait, 10) == 3
    assert schedules(bot) == []  # refused: dialling again changes nothing


async def test_a_daily_reserve_bot_waits_without_a_room_and_takes_its_room_from_the_assignment(dispatcher, spawn_bot):
    channels, url = dispatcher
    bot = spawn_bot(env=reserve_env(url, "daily-1", BOT_TRANSPORT="daily"), wait_ready=False)
    await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)  # no room URL needed to wait
    link = await wait_idle(channels)
    assert link.hello.capabilities == ("daily", "websocket")  # a reserve bot takes phone calls too
    with pytest.raises(BotRequestFailed) as wrong:
        await link.request("assign", {"session_id": "s-w", "max_session_seconds": 60, "transport": "webrtc"})
    assert wrong.value.code == "unsupported_transport"
    params = {"session_id": "s-d", "max_session_seconds": 60, "transport": "daily",
              "room_url": "https://check.invalid/vf-room", "token": "bot-token"}
    assert (await link.request("assign", params))["session_id"] == "s-d"
    bot.proc.terminate()
    ended = await asyncio.to_thread(bot.next_event, "ended", READY_TIMEOUT)
    assert ended["session_id"] == "s-d"
    assert "bot-token" not in "".join(bot.stderr_lines)  # the token is never logged


def cold_env(url: str, session_id: str, **extra: str) -> dict[str, str]:
    """A cold bot's launch values: its session id and transport, its own credential, no session secret."""
    credential = BotCredentials(TOKEN).issue("session", session_id, 600)
    return bot_env(BOT_CHANNEL_URL=url, BOT_CHANNEL_TOKEN=credential, VOICEFLEET_SESSION_ID=session_id,
                   BOT_MACHINE_ID=f"cold-{session_id}", **extra)


async def wait_link(channels, session_id: str, after=None):
    assert await channels.wait_until(
        lambda: (link := channels.link_for(session_id)) is not None and link is not after, READY_TIMEOUT)
    return channels.link_for(session_id)


async def test_a_cold_bot_waits_for_its_own_sessions_values_and_dials_again_when_they_are_lost(
    dispatcher, spawn_bot
):
    channels, url = dispatcher
    bot = spawn_bot(env=cold_env(url, "s-cold", BOT_TRANSPORT="daily"), wait_ready=False)
    link = await wait_link(channels, "s-cold")
    assert link.hello.session_id == "s-cold"
    await link.socket.close()  # the channel drops before its values came: it dials again for them
    again = await wait_link(channels, "s-cold", after=link)
    with pytest.raises(BotRequestFailed) as other:
        await again.request("assign", {"session_id": "s-other", "max_session_seconds": 60, "transport": "daily",
                                       "room_url": "https://check.invalid/vf-other", "token": "other-token"})
    assert (other.value.status, other.value.code) == (409, "not_its_session")
    params = {"session_id": "s-cold", "max_session_seconds": 60, "transport": "daily",
              "room_url": "https://check.invalid/vf-cold", "token": "cold-token", "body": {"lang": "en"}}
    assert (await again.request("assign", params))["session_id"] == "s-cold"
    assert (await again.request("assign", params))["session_id"] == "s-cold"  # sent again: answered again
    ready = await asyncio.to_thread(bot.next_event, "ready", READY_TIMEOUT)  # its room came with the values
    assert ready["session_id"] == "s-cold"
    bot.proc.terminate()
    assert await asyncio.to_thread(bot.wait, 30) is not None
    assert "cold-token" not in "".join(bot.stderr_lines)  # the token is never logged


DIAL_FAILED = re.compile(r"(first dial|channel reconnect) failed")
SCHEDULE = re.compile(r"(first dial|channel reconnect): dialling again after ([0-9., ]+) s")


async def failed_dials(bot, at_least: int, after: int = 0) -> list[str]:
    """The kinds of dial the bot logged as failed past its first `after` stderr lines, once there
    are `at_least` of them (each follows a delay of its schedule: no clock is read here)."""
    def kinds() -> list[str]:
        return [m[1] for line in bot.stderr_lines[after:] if (m := DIAL_FAILED.search(line))]

    for _ in range(int(READY_TIMEOUT / 0.1)):
        if len(kinds()) >= at_least or bot.proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert len(kinds()) >= at_least, f"the bot logged {kinds()}; stderr tail:\n{bot.stderr_tail()}"
    return kinds()


def schedules(bot, after: int = 0) -> list[tuple[str, tuple[float, ...]]]:
    """Each schedule of dials the bot announced past its first `after` stderr lines, in order."""
    return [(m[1], tuple(float(d) for d in m[2].split(", ")))
            for line in bot.stderr_lines[after:] if (m := SCHEDULE.search(line))]


async def test_a_cold_bot_dials_on_the_first_dial_schedule_until_it_reaches_the_dispatcher(spawn_bot):
    """A cold bot's task is as new as a reserve bot's (Cloud Run's Direct VPC egress can carry
    nothing for a minute and more): until it has reached the dispatcher its dials follow the
    first-dial schedule (~2 min), not the reconnect one (~1 min); once there, a lost channel
    is dialled on the reconnect schedule."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    bot = spawn_bot(env=cold_env(url, "s-late", BOT_TRANSPORT="daily"), wait_ready=False)
    assert await failed_dials(bot, 3) == ["first dial"] * 3
    assert schedules(bot) == [("first dial", FIRST_DIAL_DELAYS_SECONDS)]
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    async with serving(app, port=port):
        await wait_link(app.state.voicefleet.channels, "s-late")
        reached = len(bot.stderr_lines)
    await app.state.voicefleet.aclose()  # the dispatcher is gone: the bot dials again for its values
    assert set(await failed_dials(bot, 2, after=reached)) == {"channel reconnect"}
    assert schedules(bot, after=reached) == [("channel reconnect", RECONNECT_DELAYS_SECONDS)]
    assert bot.proc.poll() is None  # still within its connect timeout


def test_a_cold_bot_that_cannot_reach_its_channel_ends_without_its_sessions_values(spawn_bot):
    # Nothing listens on the channel's port: the bot has no room, token or body to serve with
    # (they come over the channel), so it ends within its connect timeout, saying why.
    env = cold_env("ws://127.0.0.1:9/bots/channel", "s-cold", BOT_TRANSPORT="daily")
    bot = spawn_bot("--connect-timeout", "3", env=env, wait_ready=False)
    # Its connect timeout runs once its imports are done: their bound, and then the timeout's.
    assert bot.wait(READY_TIMEOUT + 3) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] == "channel_lost" and "values" in ended["detail"], ended


async def test_a_user_bot_on_the_channel_is_reported_joined_then_first_audio_then_ended(dispatcher, spawn_bot):
    """The host reports what it sees of a user's bot file it does not control: the peer joined, the
    bot's first speech starting to play (its greeting), and the end with its reason."""
    channels, url = dispatcher
    reports: list[str] = []
    channels.report_listeners.append(lambda link, report: reports.append(report.event))
    greeter = str(REPO / "tests" / "bots" / "greeter.py")
    bot = spawn_bot(env=reserve_env(url, BOT_FILE=greeter), wait_ready=False)
    link = await wait_idle(channels)
    assert channels.take_idle(lambda candidate: candidate is link) is link
    channels.bind(link, "s-greet")  # as the reserve does before assigning: its reports are the session's
    await link.request("assign", {"session_id": "s-greet", "max_session_seconds": 60})
    async with WebRTCClient("unused", signal=lambda offer: link.request("webrtc.offer", offer)):
        assert await channels.wait_until(lambda: "first_audio" in reports, READY_TIMEOUT), reports
    assert await asyncio.to_thread(bot.wait, 30) == 0
    assert await channels.wait_until(lambda: "ended" in reports, READY_TIMEOUT), reports
    assert [event for event in reports if event in ("ready", "joined", "first_audio", "ended")] == [
        "ready", "joined", "first_audio", "ended"]  # fmt: skip


IDLE_BOUND = 10  # seconds


async def test_a_frozen_reserve_bot_comes_back_warm_after_its_resume_and_takes_a_session(dispatcher, spawn_bot):
    """SIGSTOP/SIGCONT model the machine's snapshot: the same process, its imports and VAD done,
    re-dials with the same credential and says its idle hello again; frozen time is not idle time."""
    channels, url = dispatcher
    # An idle bound no round trip of this test reaches on a busy machine, and frozen for longer.
    bot = spawn_bot(env=reserve_env(url, "rsv-frozen", BOT_MAX_IDLE_SECONDS=str(IDLE_BOUND)), wait_ready=False)
    first = await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)
    link = await wait_idle(channels)
    assert channels.take_idle(lambda candidate: candidate is link) is link  # the reserve takes it to freeze
    assert (await link.request("freeze", {}))["machine_id"] == "rsv-frozen"
    bot.proc.send_signal(signal.SIGSTOP)  # the machine is suspended, its process in the snapshot
    try:
        await link.disconnect()  # the dispatcher closes the frozen bot's channel
        await asyncio.sleep(IDLE_BOUND + 2)  # frozen longer than BOT_MAX_IDLE_SECONDS: no idle time while frozen
        await channels.rules._claims.expect_back("rsv-frozen", "claim:local", 30)  # the reserve thaws it
    finally:
        bot.proc.send_signal(signal.SIGCONT)  # resumed
    again = await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)
    assert (again["machine_id"], again["pid"]) == (first["machine_id"], first["pid"])  # the same, warm process
    back = await wait_idle(channels)
    assert back is not link and back.machine_id == "rsv-frozen"
    params = {"session_id": "s-thawed", "max_session_seconds": 60, "body": {}}
    assert (await back.request("assign", params))["session_id"] == "s-thawed"
    ready = await asyncio.to_thread(bot.next_event, "ready", READY_TIMEOUT)
    assert ready["session_id"] == "s-thawed"


async def test_a_frozen_bot_the_dispatcher_does_not_expect_back_is_refused_and_exits(dispatcher, spawn_bot):
    channels, url = dispatcher
    bot = spawn_bot(env=reserve_env(url, "rsv-unexpected"), wait_ready=False)
    await asyncio.to_thread(bot.next_event, "idle", READY_TIMEOUT)
    link = await wait_idle(channels)
    channels.take_idle(lambda candidate: candidate is link)
    await link.request("freeze", {})
    await link.disconnect()  # and no thaw expected: its idle credential was used once already
    ended = await asyncio.to_thread(bot.next_event, "ended", READY_TIMEOUT)
    assert ended["reason"] == "channel_lost"
    assert await asyncio.to_thread(bot.wait, 10) == 3
