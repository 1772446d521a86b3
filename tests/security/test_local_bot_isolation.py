"""N1: a local bot reads none of the deployment's secrets: not in its own environment, not in its
dispatcher's (`/proc/<ppid>/environ`), not in another bot's, not even in that bot's first
milliseconds, while the variables a bot needs are there and a session still talks.

A real `python -m dispatcher` (with its secrets in its environment, as production sets them, and a
password-protected store) launches real `python -m bot` processes through the local launcher. Their
bot file is hostile (tests/security/bots/hostile.py): from its import on, it reads what it can and
writes it down. The dispatcher runs as this test's user, and again as an unprivileged user (a user
namespace mapping it to uid 1000, without capabilities on this host) when that can be made here:
CI runs as root, developers as themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.bot.test_user_bots import first_loud_audio
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import USER, RedisServer
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real dispatcher, real bots, a real store, a WebRTC session

HOSTILE_BOT = Path(__file__).resolve().parent / "bots" / "hostile.py"
KEY = "isolation-key-0123456789abcdef"
SECRETS = {
    "DISPATCHER_API_KEYS": KEY,
    "BOT_CHANNEL_TOKEN": "deployment-secret-" + "d" * 40,
    "PHONE_TOKEN_SECRET": "phone-token-secret-" + "p" * 40,
    "TWILIO_AUTH_TOKEN": "twilio-auth-token-" + "t" * 30,
    "PLIVO_AUTH_TOKEN": "plivo-auth-token-" + "v" * 30,
    "DAILY_DIALIN_SECRET": "dialin-secret-" + "i" * 30,
    "EXOTEL_API_KEY": "exotel-key-" + "e" * 20,
    "EXOTEL_API_TOKEN": "exotel-token-" + "x" * 20,
    "REDIS_MESSAGE_SECRET": "store-message-secret-" + "m" * 30,  # signs what replicas say through the store
}
USER_KEY = "the-users-own-deepgram-key"  # what the user named for their bot (LOCAL_BOT_ENV)
WAIT = 90.0
UNPRIVILEGED = ("unshare", "--user", "--map-user=1000", "--map-group=1000")


def _unprivileged_prefix() -> Sequence[str]:
    if shutil.which("unshare") is None or subprocess.run([*UNPRIVILEGED, "true"], capture_output=True).returncode:
        pytest.skip("this host makes no user namespaces (unshare --user)")
    return UNPRIVILEGED


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def reports(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # being replaced this instant
    return found


def siblings_tried_alive(report: dict[str, Any]) -> int:
    """Siblings the bot tried while they lived (a dead one answers FileNotFoundError)."""
    return sum(1 for tried in report["siblings"].values() if "read" in tried or "PermissionError" in tried["refused"])


async def until(condition: Any, what: str, folder: Path, dispatcher: DispatcherProcess) -> None:
    for _ in range(int(WAIT / 0.1)):
        if condition(reports(folder)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {WAIT:g}s; reports: {reports(folder)}\n{dispatcher.log()[-3000:]}")


@pytest.mark.parametrize("user", ["this test's user", "an unprivileged user"])
async def test_a_local_bot_reads_no_secret_of_the_dispatcher_nor_of_another_bot(
    user: str, store: RedisServer, tmp_path: Path
) -> None:
    prefix = _unprivileged_prefix() if user == "an unprivileged user" else ()
    folder = tmp_path / "reports"
    folder.mkdir()
    store_url = f"redis://{USER}:{store.password}@127.0.0.1:{store.port}/0"  # the stack's user, its password in the URL
    env = {
        **SECRETS, "REDIS_URL": store_url, "REPLICA_ID": "r-isolation",
        "BOT_FILE": str(HOSTILE_BOT), "RESERVE_MIN_IDLE": "2", "RESERVE_MAX_IDLE": "2",
        "DEEPGRAM_API_KEY": USER_KEY, "HOSTILE_REPORT_DIR": str(folder), "HOSTILE_STORE_PORT": str(store.port),
        "LOCAL_BOT_ENV": "DEEPGRAM_API_KEY,HOSTILE_REPORT_DIR,HOSTILE_STORE_PORT",
    }  # fmt: skip
    with redis.Redis.from_url(store.url, password=store.password) as replica:
        assert replica.ping()  # control: with the password, the stack's user is answered
    with run_dispatcher(tmp_path, env, ready_timeout=WAIT, command_prefix=prefix) as dispatcher:
        await until(lambda found: len(found) >= 2 and all(siblings_tried_alive(r) for r in found),
                    "two reserve bots did not each try the other", folder, dispatcher)
        async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
            headers = {"Authorization": f"Bearer {KEY}"}
            started = await api.post("/start?wait=started", json={"body": {}}, headers=headers)
            assert started.status_code == 201, started.text
            offer_url = dispatcher.base_url + started.json()["offer_url"]
            async with WebRTCClient(offer_url, headers=headers, connect_timeout=WAIT) as client:
                await first_loud_audio(client)  # control: the hostile bot still serves its session
            # The claimed bot's replacement was tried by the others from its first milliseconds on.
            await until(lambda found: any(siblings_tried_alive(r) >= 2 for r in found),
                        "no bot tried the reserve's new bot", folder, dispatcher)
        found = reports(folder)

    secret_values = {*SECRETS.values(), store.password}
    for report in found:
        leaked = sorted(name for name, value in report["own"].items() if any(s in value for s in secret_values))
        assert leaked == [], f"bot {report['pid']} holds the deployment's secrets in its own environment: {leaked}"
        assert report["ppid"] == dispatcher.process.pid  # the attack aimed at the dispatcher itself
        assert "refused" in report["parent"], f"bot {report['pid']} read its dispatcher's environment"
        read = sorted(pid for pid, tried in report["siblings"].items() if "read" in tried)
        assert read == [], f"bot {report['pid']} read the environment of bots {read}"
        # The store on loopback: a bot reaches its port, but holds no password, and the stack's user
        # rules give nothing to whoever has none.
        store_said = report["store"]
        assert all(answer.startswith(("-", "refused")) for answer in store_said.values()), store_said

        own = report["own"]  # control: what a bot needs is there
        assert own["DEEPGRAM_API_KEY"] == USER_KEY and own["BOT_FILE"] == str(HOSTILE_BOT)
        assert own["PATH"] == os.environ["PATH"] and "HOME" in own
        assert own["BOT_CHANNEL_TOKEN"] not in secret_values  # its own credential, not the deployment's
