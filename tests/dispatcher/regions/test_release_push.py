"""A change of the releases' traffic is pushed to a peer at once, signed, not only pulled from this
region's state: the peer here is a real dispatcher app on a loopback port that polls nobody (no
lifespan), so only the push can bring it the change. A deployment's own change is not pushed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType

from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.regions.releases import RegionalReleases
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.live import LiveReleases
from dispatcher.store.release_book import MemoryReleaseBook
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port
from tests.support.releases import release_env

SECRET = "region-secret-0123456789abcdefghij"


def region_app(folder: Path, here: str, urls: dict[str, str], secret: str) -> FastAPI:
    """A dispatcher app of region `here` among `urls` (name → URL), with the two releases and local bots."""
    env = {**release_env(folder), "REGION": here, "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()),
           "REGION_SECRET": secret, "DISPATCHER_API_KEYS": "k" * 24, "RESERVE_MAX_IDLE": "0"}
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    return create_app(env=env, machines=machines, rooms=None)


async def test_a_change_made_here_is_pushed_to_a_peer_that_does_not_poll(tmp_path: Path) -> None:
    port = free_port()
    urls = {"eu": "http://127.0.0.1:1", "us": f"http://127.0.0.1:{port}"}
    us_app = region_app(tmp_path, "us", urls, SECRET)
    us = us_app.state.voicefleet.releases

    eu = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), MemoryReleaseBook(), region="eu")
    regions = Regions("eu", MappingProxyType(urls), SECRET.encode())
    pushing = RegionalReleases(Peers(regions), eu)
    try:
        async with serving(us_app, port):
            await eu.refresh()  # the first configuration: the deployment's, which stays in its region
            await asyncio.sleep(0.5)
            assert us.traffic.version[0] == 0  # nothing pushed; us has read nothing itself (no lifespan)

            made = await eu.change(lambda t, v: t.with_weight("next", 35, "ops", v))
            async with asyncio.timeout(30):
                while us.traffic.version != made.version:
                    await asyncio.sleep(0.02)
            assert dict(us.traffic.weights) == {"stable": 65, "next": 35}
            assert (await us.history(1))[0]["region"] == "eu"
    finally:
        await pushing.aclose()
        await us_app.state.voicefleet.aclose()
