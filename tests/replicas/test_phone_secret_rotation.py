"""Finding: while `REDIS_MESSAGE_SECRET` was changed (three deploys, docs/pulumi.md), a phone call
spanning the first two deploys broke: the carrier's replica wrote the call's media digest under the
old secret, the replica the bot's media socket reached matched only the new one, and the caller got
1011. Real dispatcher processes, a real redis-server with the stack's access rules, a real bot:
A runs the first deploy (seals with OLD, accepts NEW) and holds the carrier's socket; B runs the
second (seals with NEW, accepts OLD) and takes the bot. The caller hears the bot. The control runs
both at the first deploy."""

from __future__ import annotations

import secrets
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from botchannel.contract import CHANNEL_PATH
from tests.phone.conftest import phone_env
from tests.replicas.test_phone_calls import API_KEY, AUTH, BOT_ELSEWHERE, place_call
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server


@pytest.mark.parametrize("b_step", ["second deploy", "control: first deploy"])
async def test_a_call_across_two_steps_of_a_secret_change_reaches_its_bot(tmp_path: Path, b_step: str) -> None:
    media = tmp_path / "media"
    for folder in (media, tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(tmp_path))
        old, new = store.message_secret, secrets.token_urlsafe(32)
        first = {"REDIS_MESSAGE_SECRET": old, "REDIS_ACCEPTED_MESSAGE_SECRET": new}
        second = {"REDIS_MESSAGE_SECRET": new, "REDIS_ACCEPTED_MESSAGE_SECRET": old}
        common = {**phone_env(tmp_path), **store.env, "REDIS_LEASE_SECONDS": "3",
                  "BOT_CHANNEL_TOKEN": "rotation-deployment-secret-0123456789abcdef",
                  "DISPATCHER_API_KEYS": API_KEY, "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0",
                  "START_WAIT_SECONDS": "120", "LOG_LEVEL": "info"}
        b = stack.enter_context(run_dispatcher(
            tmp_path / "b", {**common, "REPLICA_ID": "r-b", **(second if b_step == "second deploy" else first)}))
        a = stack.enter_context(run_dispatcher(tmp_path / "a", {
            **common, "REPLICA_ID": "r-a", **first,
            "LOCAL_BOT_COMMAND": shlex.join([sys.executable, str(BOT_ELSEWHERE)]),
            "PHONE_BOT_CHANNEL_URL": b.base_url.replace("http://", "ws://") + CHANNEL_PATH,
            "PHONE_MEDIA_DIR": str(media),
            "LOCAL_BOT_ENV": common["LOCAL_BOT_ENV"] + ",PHONE_BOT_CHANNEL_URL,PHONE_MEDIA_DIR"}))
        async with api_client(base_url=a.base_url, timeout=30, headers=AUTH) as api:
            call, session_id = await place_call(api, {"plan": "gold"})
            try:
                greeting = await call.bot_audio(0.1, timeout=90)
            finally:
                await call.hang_up()
        assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500, "the caller heard nothing"
        assert f"/bots/media/{session_id}" in b.log()  # the bot's media socket went through B
