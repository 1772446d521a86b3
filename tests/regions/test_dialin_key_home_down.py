"""A Daily dial-in is answered while the region its call's key hashes to is down: the next region in
the same order stands in as the call's home, so a region that can take the call takes it, and Daily's
retry finds the same session; so is one whose home is up but cannot answer for the key (its store
down, while the regions' polls still find it reachable). Real regional dispatchers."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.regions.config import Regions
from dispatcher.regions.home import home_region
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.regions.support import SECRET, more_polls, region_env, regions, until
from tests.regions.test_spill_over import peer_view
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher, terminate
from tests.support.redis_server import redis_server

SECRET_PATH = "daily-dialin-secret-of-every-region-0123"


def dial_in_homed_at_us(urls: dict[str, str], daily: FakeDaily) -> tuple[httpx.Response, dict[str, str]]:
    """A dial-in at eu whose call's key hashes to us: eu's answer, and the call."""
    listing = Regions("eu", MappingProxyType(urls), SECRET.encode())
    call_id = next(f"call-{n}" for n in range(100)
                   if home_region(listing, PHONE_CALLER, f"daily-dialin:call-{n}") == "us")
    daily.hold_call(call_id, "dom-1")
    call = {"From": "+14155550100", "To": "+14155550199", "callId": call_id, "callDomain": "dom-1"}
    return httpx.post(f"{urls['eu']}/phone/daily/dialin/{SECRET_PATH}", json=call, timeout=30), call


def test_a_dialin_a_region_can_take_is_taken_while_its_calls_key_home_is_down(tmp_path: Path) -> None:
    secret = SECRET_PATH
    with serve(FakeDaily(), "/v1") as daily:
        # eu can take any call itself: callers wait out its cold start (no spill-over is asked for).
        common = {**daily.env, "TRANSPORTS": "webrtc,daily", "DAILY_DIALIN_SECRET": secret,
                  "STANDIN_CAPABILITIES": "webrtc,daily", "PHONE_MAX_WAIT_SECONDS": "60"}
        with regions(tmp_path, ("eu", "us"), {"eu": common, "us": common}) as (urls, running):
            until(lambda: peer_view(running["eu"], "us").get("reachable"), 60)
            terminate(running["us"].process)  # us is down
            until(lambda: peer_view(running["eu"], "us").get("reachable") is False, 60)
            answer, call = dial_in_homed_at_us(urls, daily)
            # eu can start this caller's bot itself; the call's key home (by hash) is us, which is down.
            assert answer.status_code == 201, answer.text
            retried = httpx.post(f"{urls['eu']}/phone/daily/dialin/{secret}", json=call, timeout=30)
            assert retried.status_code == 200 and retried.json()["sessionId"] == answer.json()["sessionId"]


def test_a_dialin_is_taken_while_its_calls_key_home_has_no_store(tmp_path: Path) -> None:
    secret = SECRET_PATH
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}
    with serve(FakeDaily(), "/v1") as daily, redis_server(tmp_path) as store, ExitStack() as stack:
        common = {**daily.env, "TRANSPORTS": "webrtc,daily", "DAILY_DIALIN_SECRET": secret,
                  "STANDIN_CAPABILITIES": "webrtc,daily", "PHONE_MAX_WAIT_SECONDS": "60"}
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **common, **(store.env if name == "us" else {})},
            port=int(urls[name].rsplit(":", 1)[1]), log_name=f"{name}.log")) for name in urls}
        until(lambda: peer_view(running["eu"], "us").get("reachable"), 60)
        store.stop()  # us runs on; its store does not answer
        more_polls(running["us"], 3)  # several of eu's polls since: its view of us has settled
        assert peer_view(running["eu"], "us").get("reachable")  # us answers its polls without a store
        answer, _ = dial_in_homed_at_us(urls, daily)
        seen = peer_view(running["eu"], "us")
        assert answer.status_code == 201, (answer.text, seen)
