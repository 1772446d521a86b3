"""Call tokens that spill over to a neighbouring region and never connect cannot empty it.

A key's call-token start (`transport: websocket`) that this region cannot serve warm in time is
relayed to the nearest region with room, which holds one of its places for the call until its
client connects. Those places used to be held for the token's whole life (300 s), outside the
asking key's share and up to the whole room: one key's burst of tokens left the neighbour
advertising room 0, so every other key's spill-over and every carrier hand-off skipped it. Now a
key's tokens hold places within its share, all such places within half the room, and each for
seconds. Real regional dispatchers on loopback, two API keys; the neighbour alone, or with its
store (a redis-server signed in as the stack's user), where its replicas count the places."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from dispatcher.regions.config import Regions
from dispatcher.regions.peers import STATE_PATH
from dispatcher.regions.signing import RegionSigner
from tests.dispatcher.conftest import API_KEY
from tests.regions.support import SECRET, regions, until
from tests.regions.test_phone_across_regions import TWILIO_TOKEN
from tests.regions.test_phone_handoff_limits import ask
from tests.regions.test_spill_over import peer_view
from tests.support.processes import DispatcherProcess
from tests.support.redis_server import redis_server

OTHER_KEY = "second-test-key-0123456789"  # key B: the one minting tokens
KEYS = ",".join((API_KEY, OTHER_KEY))
HURRIED = {"maxWaitSeconds": 10}  # eu quotes a 20 s cold start, us 2 s: such a start spills to us


def room_at_us(urls: dict[str, str]) -> int:
    """What us advertises to every peer (its signed /regions/state)."""
    signer = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode()))
    answer = httpx.get(f"{urls['us']}{STATE_PATH}", headers=signer.headers("us", "GET", STATE_PATH), timeout=5)
    return int(answer.json()["capacity"]["room"])


@pytest.mark.parametrize("store", [False, True], ids=["alone", "with_store"])
def test_one_keys_never_connected_tokens_leave_the_neighbours_room_to_others(tmp_path: Path, store: bool) -> None:
    common = {"DISPATCHER_API_KEYS": KEYS, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    eu = {**common, "RESERVE_COLD_START_SECONDS": "20"}
    us = {**common, "RESERVE_COLD_START_SECONDS": "2", "MAX_CONCURRENT_SESSIONS": "8"}  # a key's share: 4
    with ExitStack() as stack:
        if store:
            secret = "phone-token-secret-of-the-region-" + "u" * 8  # its replicas' one token key
            us.update(stack.enter_context(redis_server(tmp_path)).env, PHONE_TOKEN_SECRET=secret)
        _check(*stack.enter_context(regions(tmp_path, ("eu", "us"), {"eu": eu, "us": us})))


def _check(urls: dict[str, str], running: dict[str, DispatcherProcess]) -> None:
    """Key B's burst of tokens at eu, none connected; then what us advertises, and who it still takes."""
    until(lambda: (peer_view(running["eu"], "us").get("capacity") or {}).get("room") == 8, 20)
    tokens = [httpx.post(f"{urls['eu']}/start", json={"transport": "websocket", **HURRIED},
                         headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=30) for _ in range(6)]
    us_port = urls["us"].rsplit(":", 1)[1]
    spilled = [t for t in tokens if t.status_code == 201 and f"127.0.0.1:{us_port}/" in t.json()["wsUrl"]]
    # Key B's six tokens: its places count in its share (4 of 8), and keys' held places in half the room (4).
    assert 1 <= len(spilled) <= 4, [t.text for t in tokens]
    assert room_at_us(urls) >= 4
    # Another key's hurried start still spills to us, and a carrier's call is still handed there.
    until(lambda: (peer_view(running["eu"], "us").get("capacity") or {}).get("room", 0) > 0, 10)
    other = httpx.post(f"{urls['eu']}/start", json={"body": {}, **HURRIED},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert other.status_code == 201 and other.json()["region"] == "us", other.text
    assert ask(urls, "us").status_code == 200
    # The places are given back within seconds, no token having connected: us has room for all
    # but key A's session again.
    until(lambda: room_at_us(urls) == 7, 60)
