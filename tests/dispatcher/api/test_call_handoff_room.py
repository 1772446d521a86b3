"""The region that hands a call over lowers the room it last read from the peer that took it, until
its next read: a peer advertising room for one call is handed one, not one per webhook meanwhile.
A peer that refused a call (429) is not asked again for the next calls: they are answered here."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from dispatcher.api.call_handoff import handed_elsewhere
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.regions.calls import CALLS_PATH
from dispatcher.regions.peers import Capacity
from dispatcher.settings import Settings
from dispatcher.wiring import build_state
from tests.dispatcher.regions.test_call_handoff_answers import signed
from tests.support.hook_receiver import hook_receiver

SECRET = "s" * 32


@pytest.mark.parametrize("refuses", [False, True])
async def test_a_peer_with_room_for_one_call_is_handed_one(refuses: bool) -> None:
    asked: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        asked.append(request.path)
        if refuses:
            return web.json_response({"error": {"code": "at_capacity"}}, status=429)
        port = urlsplit(str(request.url)).port
        return signed(request, {"region": "us", "stream": f"ws://127.0.0.1:{port}/ws/twilio/t{len(asked)}",
                                "session_id": "x"}, SECRET.encode())

    async with hook_receiver(handler, path=CALLS_PATH) as calls_url:
        us = calls_url.removesuffix(CALLS_PATH)
        # eu: no warm bot, and a cold start past the phone's wait: its calls are handed over.
        env = {"REGION": "eu", "REGIONS": f"eu=http://127.0.0.1:1,us={us}", "REGION_SECRET": SECRET,
               "DISPATCHER_API_KEYS": "k" * 20, "RESERVE_COLD_START_SECONDS": "20", "RESERVE_MAX_IDLE": "0"}
        state = build_state(Settings.from_env(env), env=env,
                            machines=LocalMachines(LocalSettings(bot_command=("true",))), rooms=None)
        try:
            peer = state.peers.by_name["us"]
            peer.reachable, peer.round_trip = True, 0.01
            peer.capacity = Capacity(warm={"websocket": True}, idle=1, room=1, cold_start_seconds=math.inf)
            first = await handed_elsewhere(state, "twilio")
            if refuses:
                assert first is None  # answered here
                peer.capacity = Capacity(warm={"websocket": True}, idle=1, room=1, cold_start_seconds=math.inf)
            else:
                assert first is not None and first.region == "us"
                assert peer.capacity.room == 0
            assert await handed_elsewhere(state, "twilio") is None  # answered here: no room left, or resting
            assert asked == [CALLS_PATH]
        finally:
            await state.aclose()
