"""A Daily dial-in is answered while the region its call's key hashes to is down: the next region in
the same order stands in as the call's home, so a region that can take the call takes it, and Daily's
retry finds the same session. Real regional dispatchers (`python -m dispatcher`)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.regions.config import Regions
from dispatcher.regions.home import home_region
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.regions.test_region_peers import SECRET, regions, until
from tests.regions.test_spill_over import peer_view
from tests.support.processes import terminate


def test_a_dialin_a_region_can_take_is_taken_while_its_calls_key_home_is_down(tmp_path: Path) -> None:
    secret = "daily-dialin-secret-of-every-region-0123"
    with serve(FakeDaily(), "/v1") as daily:
        # eu can take any call itself: callers wait out its cold start (no spill-over is asked for).
        common = {**daily.env, "TRANSPORTS": "webrtc,daily", "DAILY_DIALIN_SECRET": secret,
                  "STANDIN_CAPABILITIES": "webrtc,daily", "PHONE_MAX_WAIT_SECONDS": "60"}
        with regions(tmp_path, ("eu", "us"), {"eu": common, "us": common}) as (urls, running):
            until(lambda: peer_view(running["eu"], "us").get("reachable"), 20)
            terminate(running["us"].process)  # us is down
            until(lambda: peer_view(running["eu"], "us").get("reachable") is False, 20)
            listing = Regions("eu", MappingProxyType(urls), SECRET.encode())
            call_id = next(f"call-{n}" for n in range(100)
                           if home_region(listing, PHONE_CALLER, f"daily-dialin:call-{n}") == "us")
            daily.hold_call(call_id, "dom-1")
            call = {"From": "+14155550100", "To": "+14155550199", "callId": call_id, "callDomain": "dom-1"}
            answer = httpx.post(f"{urls['eu']}/phone/daily/dialin/{secret}", json=call, timeout=30)
            # eu can start this caller's bot itself; the call's key home (by hash) is us, which is down.
            assert answer.status_code == 201, answer.text
            retried = httpx.post(f"{urls['eu']}/phone/daily/dialin/{secret}", json=call, timeout=30)
            assert retried.status_code == 200 and retried.json()["sessionId"] == answer.json()["sessionId"]
