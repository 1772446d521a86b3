"""N6 locally: a young bot's launch credential, read from its `/proc/<pid>/environ`, lets nobody dial
first as that bot: the hello must carry a nonce written through the bot's own launch socket
(dispatcher/machines/local/launch_proof.py), which reading `/proc` does not give.

A real `python -m dispatcher` launches real `python -m bot` processes. The attacker is another
process of the dispatcher's user (this test): Landlock confines bots only, so such a process reads
a young bot's environment whatever the isolation, the moment the bot exists, long before the bot
has imported its pipeline and dialled. It dials first with the bot's credential, its machine id and
its session (a cold bot) or no session (a reserve bot), without a proof and with a forged one. Before
the launch proof it was welcomed and got the session's `assign` (the caller's `body`); the real bot
was then refused as a second machine. The control: the real bot is admitted, and its session talks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH, MACHINE_ID_VARIABLE, Hello
from tests.bot.test_user_bots import first_loud_audio
from tests.security.conftest import dial
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, children_of, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real dispatcher, real bots, a WebRTC session

GREETER = Path(__file__).resolve().parents[1] / "bots" / "greeter.py"
KEY = "cold-race-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
WAIT = 90.0


def young_bot(dispatcher: DispatcherProcess, known: set[int]) -> tuple[int, dict[str, str]]:
    """The first new child of the dispatcher, and its environment as read in its first moments."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for pid in children_of(dispatcher.process.pid):
            if pid in known:
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as environ:
                    entries = [e.partition(b"=") for e in environ.read().split(b"\0") if e]
            except OSError:
                continue  # not exec'd yet, or gone
            env = {k.decode(): v.decode(errors="replace") for k, _, v in entries}
            if "BOT_CHANNEL_TOKEN" in env:
                return pid, env
        time.sleep(0.002)
    raise AssertionError(f"no bot started within {WAIT:g}s\n{dispatcher.log()[-3000:]}")


@pytest.fixture
def dispatcher(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DispatcherProcess]:
    reserve = {"RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1"} if request.param == "reserve" else {
        "RESERVE_MAX_IDLE": "0"}
    env = {"DISPATCHER_API_KEYS": KEY, "BOT_FILE": str(GREETER), **reserve}
    with run_dispatcher(tmp_path, env, ready_timeout=WAIT) as running:
        yield running


async def thief_dials(url: str, env: dict[str, str], session_id: str | None) -> list[object]:
    """What the attacker gets for each hello it tries with the stolen credential: None when refused."""
    credential, machine_id = env["BOT_CHANNEL_TOKEN"], env[MACHINE_ID_VARIABLE]
    got = []
    for identity in (None, secrets.token_urlsafe(32)):  # no proof; a forged one of the right shape
        ws = await dial(url, credential, Hello(machine_id=machine_id, image="dev", capabilities=("webrtc",),
                                               session_id=session_id, identity=identity))
        got.append(ws)
        if ws is not None:
            await ws.close()
    return got


async def talks(dispatcher: DispatcherProcess, api: httpx.AsyncClient, offer_path: str) -> None:
    async with WebRTCClient(dispatcher.base_url + offer_path, headers=HEADERS, connect_timeout=WAIT) as client:
        await first_loud_audio(client)


@pytest.mark.parametrize("dispatcher", ["cold"], indirect=True)
async def test_a_cold_bots_credential_read_from_proc_does_not_dial_first(dispatcher: DispatcherProcess) -> None:
    url = dispatcher.base_url.replace("http://", "ws://") + CHANNEL_PATH
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        known = set(children_of(dispatcher.process.pid))
        start = asyncio.create_task(api.post("/start?wait=started", json={"body": {"secret": "caller-data"}},
                                             headers=HEADERS))
        _, env = await asyncio.to_thread(young_bot, dispatcher, known)
        session_id = env[MACHINE_ID_VARIABLE].removeprefix("local-")
        assert await thief_dials(url, env, session_id) == [None, None], "a hello from another process was welcomed"
        started = await start  # control: the real bot was admitted and took its session's values
        assert started.status_code == 201, f"{started.text}\n{dispatcher.log()[-3000:]}"
        assert started.json()["session_id"] == session_id
        await talks(dispatcher, api, started.json()["offer_url"])


@pytest.mark.parametrize("dispatcher", ["reserve"], indirect=True)
async def test_a_reserve_bots_credential_read_from_proc_does_not_dial_first(dispatcher: DispatcherProcess) -> None:
    url = dispatcher.base_url.replace("http://", "ws://") + CHANNEL_PATH
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        _, env = await asyncio.to_thread(young_bot, dispatcher, set())  # the reserve starts with the dispatcher
        assert await thief_dials(url, env, None) == [None, None], "an idle hello from another process was welcomed"
        started = await api.post("/start?wait=started", json={"body": {}}, headers=HEADERS)
        assert started.status_code == 201, f"{started.text}\n{dispatcher.log()[-3000:]}"
        await talks(dispatcher, api, started.json()["offer_url"])  # control: served by the real reserve bot
