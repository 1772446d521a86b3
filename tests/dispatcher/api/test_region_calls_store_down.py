"""A region asked for a handed call's stream while its store does not answer refuses it 503: a
signed request is taken once across the region's replicas, never on one replica's memory, which
would let one captured request mint a stream token at each replica."""

from __future__ import annotations

import json
from types import MappingProxyType

import httpx

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.regions.calls import CALLS_PATH
from dispatcher.regions.config import Regions
from dispatcher.regions.signing import RegionSigner
from dispatcher.settings import Settings
from tests.support.ports import free_port

SECRET = "s" * 32
URLS = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}


async def test_a_handed_call_is_refused_503_while_the_store_is_down() -> None:
    nothing_listens = f"redis://:pw-{SECRET}@127.0.0.1:{free_port()}/0"
    env = {"REGION": "us", "REGIONS": ",".join(f"{n}={u}" for n, u in URLS.items()), "REGION_SECRET": SECRET,
           "DISPATCHER_API_KEYS": "k" * 20, "REDIS_URL": nothing_listens, "REDIS_MESSAGE_SECRET": "m" * 32}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings(bot_command=("true",))),
                     rooms=None)
    body = json.dumps({"carrier": "twilio", "reason": "at_capacity"}).encode()
    headers = RegionSigner(Regions("eu", MappingProxyType(URLS), SECRET.encode())).headers("us", "POST", CALLS_PATH,
                                                                                          body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=URLS["us"]) as client:
        answers = [await client.post(CALLS_PATH, content=body, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [503, 503], [a.text for a in answers]
    assert answers[0].json()["error"]["code"] == "store_unavailable" and answers[0].headers["retry-after"]
