"""A store writer (the store user's password, not `REDIS_MESSAGE_SECRET`) against a live phone
call at three replicas: the carrier's socket at A, the bot's channel and media at B, the attacker
at C. It rewrites the call's media record so that a secret of its own matches, and dials C's media
socket: C must refuse it, since what the record holds is a MAC only the replicas can make
(dispatcher/store/call_media.py). Three real dispatcher processes, a real redis-server with the
stack's access rules, the real bot host, the fake Twilio carrier.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

from botchannel.contract import CHANNEL_PATH
from stacks.aws.store import USER
from tests.phone.conftest import phone_env, wait_active_sessions
from tests.replicas.test_phone_calls import API_KEY, AUTH, BOT_ELSEWHERE, place_call, refused
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

pytestmark = pytest.mark.slow  # real processes, Pipecat imports, real audio


@dataclass
class Trio:
    store: RedisServer
    a: DispatcherProcess  # the carrier's socket; launches the bots
    b: DispatcherProcess  # where the bots dial their channel and media
    c: DispatcherProcess  # an honest replica the attacker reaches
    media: Path


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    root = tmp_path_factory.mktemp("phone-store-writer")
    media = root / "media"
    media.mkdir()
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(root))
        common = {
            **phone_env(root), **store.env, "REDIS_LEASE_SECONDS": "3",
            "BOT_CHANNEL_TOKEN": "phone-store-writer-deployment-secret-0123456789", "DISPATCHER_API_KEYS": API_KEY,
            "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0", "START_WAIT_SECONDS": "120", "LOG_LEVEL": "info",
        }
        replicas = {}
        for name in ("c", "b"):
            (root / name).mkdir()
            replicas[name] = stack.enter_context(run_dispatcher(root / name, {**common, "REPLICA_ID": f"r-{name}"}))
        (root / "a").mkdir()
        a = stack.enter_context(run_dispatcher(root / "a", {
            **common, "REPLICA_ID": "r-a",
            "LOCAL_BOT_COMMAND": shlex.join([sys.executable, str(BOT_ELSEWHERE)]),
            "PHONE_BOT_CHANNEL_URL": replicas["b"].base_url.replace("http://", "ws://") + CHANNEL_PATH,
            "PHONE_MEDIA_DIR": str(media),
            "LOCAL_BOT_ENV": common["LOCAL_BOT_ENV"] + ",PHONE_BOT_CHANNEL_URL,PHONE_MEDIA_DIR",
        }))
        yield Trio(store, a, replicas["b"], replicas["c"], media)


def store_writer(store: RedisServer) -> redis.Redis:
    """The attacker: signed in as the dispatcher's store user, and nothing more."""
    return redis.Redis.from_url(f"redis://{USER}:{store.password}@127.0.0.1:{store.port}/0", decode_responses=True)


async def test_a_store_writer_cannot_take_a_calls_media_at_a_third_replica_and_the_call_still_relays(
    trio: Trio,
) -> None:
    writer = store_writer(trio.store)
    async with api_client(base_url=trio.a.base_url, timeout=30, headers=AUTH) as api:
        call, session_id = await place_call(api, {}, hold=trio.media)
        attach = trio.media / f"{session_id}.json"
        await until(lambda: _exists(attach), "the bot was handed its media secret", timeout=120)
        record = f"{{voicefleet}}:call:{session_id}"
        original = writer.hget(record, "digest")
        assert original and writer.hget(record, "replica") == "r-a"
        mine = secrets.token_urlsafe(32)
        # What a bare-hash record would have accepted, and the same over the session id too:
        for forged in (hashlib.sha256(mine.encode()).hexdigest(),
                       hashlib.sha256(session_id.encode() + mine.encode()).hexdigest()):
            writer.hset(record, "digest", forged)
            assert await refused(trio.c.base_url, session_id, mine), trio.c.log()[-2000:]
        assert "relayed to replica r-a" not in trio.c.log()

        # Positive control: the real secret, record restored, still reaches the caller through B.
        writer.hset(record, "digest", original)
        (trio.media / f"{session_id}.release").touch()
        greeting = await call.bot_audio(0.1, timeout=120)
        assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500, trio.a.log()[-3000:]
        assert json.loads(attach.read_text())["token"] != mine
        await call.hang_up()
        assert await wait_active_sessions(api, 0, timeout=60) == 0
    await until(lambda: _logged(trio.b, f"phone call {session_id}: bot media relayed to replica r-a"),
                "B relayed the real bot's media")


async def _exists(path: Path) -> bool:
    return path.exists()


async def _logged(replica: DispatcherProcess, line: str) -> bool:
    return line in replica.log()
