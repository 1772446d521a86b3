"""A Daily dial-in whose call's key home is up but cannot answer for the key (its store is down):
the regions' polling still finds the home reachable, so no stand-in is chosen and every region
refuses the caller 503, which the stand-in was meant to end."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.regions.config import Regions
from dispatcher.regions.home import home_region
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.regions.test_region_peers import SECRET, region_env, until
from tests.regions.test_spill_over import peer_view
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server


def test_a_dialin_is_taken_while_its_calls_key_home_has_no_store(tmp_path: Path) -> None:
    secret = "daily-dialin-secret-of-every-region-0123"
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}
    with serve(FakeDaily(), "/v1") as daily, redis_server(tmp_path) as store, ExitStack() as stack:
        common = {**daily.env, "TRANSPORTS": "webrtc,daily", "DAILY_DIALIN_SECRET": secret,
                  "STANDIN_CAPABILITIES": "webrtc,daily", "PHONE_MAX_WAIT_SECONDS": "60"}
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **common, **(store.env if name == "us" else {})},
            port=int(urls[name].rsplit(":", 1)[1]), log_name=f"{name}.log")) for name in urls}
        until(lambda: peer_view(running["eu"], "us").get("reachable"), 20)
        store.stop()  # us runs on; its store does not answer
        time.sleep(3.0)  # several polls: eu's view of us has settled
        assert peer_view(running["eu"], "us").get("reachable")  # us answers its polls without a store
        listing = Regions("eu", MappingProxyType(urls), SECRET.encode())
        call_id = next(f"call-{n}" for n in range(100)
                       if home_region(listing, PHONE_CALLER, f"daily-dialin:call-{n}") == "us")
        daily.hold_call(call_id, "dom-1")
        call = {"From": "+14155550100", "To": "+14155550199", "callId": call_id, "callDomain": "dom-1"}
        answer = httpx.post(f"{urls['eu']}/phone/daily/dialin/{secret}", json=call, timeout=30)
        seen = peer_view(running["eu"], "us")
        assert answer.status_code == 201, (answer.text, seen)
