"""A phone call whose two sockets are at two replicas: the carrier's WebSocket at replica A, the
bot's control channel and media socket at replica B (its BOT_CHANNEL_URL points there, as a load
balancer may send it). Two real dispatcher processes on a real redis-server, a real bot process
running voicefleet's host (`python -m bot`) with the echo bot. The store's side of the traffic
(MONITOR) is checked on the calls the tests make anyway, the first relayed call's and the direct one's.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from botchannel.contract import CHANNEL_PATH
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import metric, phone_env, speech_8k, wait_active_sessions
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import CommandLog, RedisServer, redis_server
from tests.support.session_api import METRICS_ADMIN
from tests.support.store_commands import dispatcher_commands
from tests.support.waiting import until

pytestmark = pytest.mark.slow  # real processes, Pipecat imports, real audio: seconds per call

API_KEY = "replicas-phone-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BOT_ELSEWHERE = Path(__file__).with_name("phone_bot_elsewhere.py")
RELAYED = 'voicefleet_phone_first_bot_audio_seconds_count{media="store",provider="local",release="default"}'
DIRECT = 'voicefleet_phone_first_bot_audio_seconds_count{media="direct",provider="local",release="default"}'


@dataclass
class Pair:
    store: RedisServer
    a: DispatcherProcess  # takes the carrier's calls and launches their bots
    b: DispatcherProcess  # where those bots dial their channel and media
    media: Path  # what each bot was handed in `media.attach`, and the hold/release knobs
    commands: CommandLog  # what the store ran since before the replicas started

    def redis(self) -> redis.Redis:
        return self.store.admin()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("phone-replicas")
    media = root / "media"
    media.mkdir()
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(root))
        commands = store.record()
        stack.callback(commands.close)
        common = {
            **phone_env(root),
            **store.env,  # signed in as the AWS stack's store user, with its access string
            "REDIS_LEASE_SECONDS": "3",
            "BOT_CHANNEL_TOKEN": "phone-replicas-deployment-secret-0123456789",
            "DISPATCHER_API_KEYS": API_KEY,
            **METRICS_ADMIN,
            "RESERVE_MIN_IDLE": "0",
            "RESERVE_MAX_IDLE": "0",  # every call's bot is launched cold by the carrier's replica
            "START_WAIT_SECONDS": "120",  # a cold bot imports Pipecat first (seconds on a busy host)
            "LOG_LEVEL": "info",
        }
        (root / "b").mkdir()
        b = stack.enter_context(run_dispatcher(root / "b", {**common, "REPLICA_ID": "r-b"}))
        (root / "a").mkdir()
        a = stack.enter_context(run_dispatcher(root / "a", {**common, **bots_dial(b, media, common["LOCAL_BOT_ENV"])}))
        yield Pair(store, a, b, media, commands)


def bots_dial(b: DispatcherProcess, media: Path, bot_env: str, *more: str) -> dict[str, str]:
    """Replica A's settings that launch its calls' bots dialling replica `b` (phone_bot_elsewhere.py,
    which reads PHONE_BOT_CHANNEL_URL and PHONE_MEDIA_DIR), with `more` of A's variables handed to them."""
    return {
        "REPLICA_ID": "r-a",
        "LOCAL_BOT_COMMAND": shlex.join([sys.executable, str(BOT_ELSEWHERE)]),
        "PHONE_BOT_CHANNEL_URL": b.base_url.replace("http://", "ws://") + CHANNEL_PATH,
        "PHONE_MEDIA_DIR": str(media),
        "LOCAL_BOT_ENV": ",".join([bot_env, "PHONE_BOT_CHANNEL_URL", "PHONE_MEDIA_DIR", *more]),
    }


async def place_call(
    api: httpx.AsyncClient, body: dict[str, object], *, hold: Path | None = None
) -> tuple[CarrierCall, str]:
    """A Twilio call to replica A with a token from `POST /start`."""
    answer = await api.post("/start", json={"transport": "twilio", "body": body})
    assert answer.status_code == 201, answer.text
    start = answer.json()
    if hold is not None:
        (hold / f"{start['sessionId']}.hold").touch()  # the bot waits before dialling its media
    call = CarrierCall("twilio", f"{start['wsUrl']}/{start['token']}")
    await call.open()
    await call.handshake()
    return call, start["sessionId"]


async def refused(base_url: str, session_id: str, secret: str) -> bool:
    """True when the replica refuses a media socket for `session_id` with this secret (HTTP 403)."""
    url = base_url.replace("http://", "ws://") + f"/bots/media/{session_id}"
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {secret}"}, proxy=None, open_timeout=10):
            return False
    except InvalidStatus as exc:
        return exc.response.status_code == 403


async def assert_bot_at_b(pair: Pair, session_id: str) -> None:
    """Its channel is at B: the owner record B writes in the background after the bot's hello (a slow
    store never holds a hello: dispatcher/channel/ownership.py), so the call's audio may come first."""
    await until(lambda: _owned_by(pair, session_id, "r-b"), "the session's owner record naming B")


async def test_a_call_reaches_its_bot_at_another_replica_both_ways_and_ends_with_the_callers_hang_up(
    pair: Pair,
) -> None:
    async with api_client(base_url=pair.a.base_url, timeout=30, headers=AUTH) as api:
        relayed_before = await metric(api, RELAYED)
        call, session_id = await place_call(api, {"plan": "gold"})
        greeting = await call.bot_audio(0.1, timeout=120)
        assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500, pair.a.log()[-3000:]
        await assert_bot_at_b(pair, session_id)
        assert await metric(api, 'voicefleet_active_sessions{provider="local",') == 1  # launched by A
        assert pair.redis().hget(f"{{voicefleet}}:call:{session_id}", "replica") == "r-a"  # the call's replica

        speech = speech_8k()
        await call.say(speech)
        echoed = await call.bot_audio(len(speech) / 16000 * 0.8, timeout=30)
        assert rms(np.frombuffer(echoed, dtype=np.int16)) > 500  # in at A, through B to the bot, back out at A

        await call.hang_up()
        assert await wait_active_sessions(api, 0, timeout=60) == 0  # the bot's machine ended
        await until(lambda: _metric_is(api, RELAYED, relayed_before + 1), "the relayed call counted")
    ended = f"phone call {session_id}: bot media relayed to replica r-a; ended by carrier"
    await until(lambda: _logged(pair.b, ended), "B logged the relayed call's end")
    # What the store ran (MONITOR) for this relayed call, against tests/support/store_commands.py's reading
    # of the code: a command it missed would be missing from the stack's access string too.
    ran = pair.commands.commands()
    assert {"publish", "subscribe", "evalsha", "hset"} <= ran, f"the frames' hop, the call's record (a script): {ran}"
    assert_store_commands_read(pair)


def assert_store_commands_read(pair: Pair) -> None:
    """What the store ran since the replicas started is what the code reading found, and none refused."""
    ran = pair.commands.commands()
    assert ran <= set(dispatcher_commands()), sorted(ran - set(dispatcher_commands()))
    assert not pair.store.refused()


async def test_the_bot_at_another_replica_hanging_up_closes_the_carriers_stream_and_ends_the_machine(
    pair: Pair,
) -> None:
    async with api_client(base_url=pair.a.base_url, timeout=30, headers=AUTH) as api:
        call, session_id = await place_call(api, {"hang_up_after_greeting": True})
        assert await call.wait_closed_by_bot(timeout=120) is not None
        assert any(m.get("event") == "media" for m in call.received), "the greeting never came through B"
        assert await wait_active_sessions(api, 0, timeout=60) == 0
    ended = f"phone call {session_id}: bot media relayed to replica r-a; ended by bot"
    await until(lambda: _logged(pair.b, ended), "B logged the relayed call's end")


async def test_a_wrong_or_replayed_media_secret_is_refused_at_either_replica(pair: Pair) -> None:
    async with api_client(base_url=pair.a.base_url, timeout=30, headers=AUTH) as api:
        call, session_id = await place_call(api, {}, hold=pair.media)
        attach = pair.media / f"{session_id}.json"
        await until(lambda: _exists(attach), "the bot was handed its media secret", timeout=120)
        secret = json.loads(attach.read_text())["token"]
        for replica in (pair.a, pair.b):  # the bot holds: the call waits for its media socket
            assert await refused(replica.base_url, session_id, secret[:-2] + "xx")
            assert await refused(replica.base_url, session_id, "")
        (pair.media / f"{session_id}.release").touch()
        greeting = await call.bot_audio(0.1, timeout=60)  # the wrong ones spent nothing
        assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500
        for replica in (pair.a, pair.b):  # spent by the bot at B: a replay opens nothing anywhere
            assert await refused(replica.base_url, session_id, secret)
        await call.say(speech_8k()[:8000])  # and the call goes on
        assert await call.bot_audio(0.1, timeout=30)
        await call.hang_up()
        assert await wait_active_sessions(api, 0, timeout=60) == 0


async def test_a_call_whose_bot_dials_the_calls_own_replica_goes_socket_to_socket_with_the_store_set(
    pair: Pair,
) -> None:
    async with api_client(base_url=pair.b.base_url, timeout=30, headers=AUTH) as api:  # B's bots dial B
        direct_before = await metric(api, DIRECT)
        call, session_id = await place_call(api, {})
        greeting = await call.bot_audio(0.1, timeout=120)
        assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500
        await call.hang_up()
        assert await wait_active_sessions(api, 0, timeout=60) == 0
        await until(lambda: _metric_is(api, DIRECT, direct_before + 1), "the direct call counted")
        assert await metric(api, RELAYED) == 0
    assert f"phone call {session_id}: bot media relayed" not in pair.a.log() + pair.b.log()
    assert_store_commands_read(pair)  # a direct call's too


async def test_the_bots_replica_dying_mid_call_ends_the_call_at_the_carriers_replica(pair: Pair) -> None:
    """Last in this module: it kills B (SIGKILL)."""
    async with api_client(base_url=pair.a.base_url, timeout=30, headers=AUTH) as api:
        call, session_id = await place_call(api, {})
        await call.bot_audio(0.1, timeout=120)
        await assert_bot_at_b(pair, session_id)
        pair.b.process.send_signal(signal.SIGKILL)
        pair.b.process.wait(10)
        assert await call.wait_closed_by_bot(timeout=60) is not None  # not a hung socket
        assert await wait_active_sessions(api, 0, timeout=60) == 0
    await until(lambda: _logged(pair.a, "ended by bot", "ended by error"), "A logged the call's end")


async def _metric_is(api: httpx.AsyncClient, name: str, wanted: float) -> bool:
    return await metric(api, name) == wanted


async def _logged(replica: DispatcherProcess, *lines: str) -> bool:
    """The replica logs a call's end after it has ended the call: read its log until the line is there."""
    log = replica.log()
    return any(line in log for line in lines)


async def _owned_by(pair: Pair, session_id: str, replica: str) -> bool:
    return bool(pair.redis().get(f"{{voicefleet}}:owner:{session_id}") == replica)


async def _exists(path: Path) -> bool:
    return path.exists()
