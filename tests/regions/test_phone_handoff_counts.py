"""A call handed from one region to another counts once: one arrival in the demand of the region
the carrier called (what it advertises as `demand_per_minute`, its planner's rate sample), none in
the demand of the region its bot runs in, and one of the carriers' starts (`START_RATE_PER_KEY`),
taken where the token is minted and never again when the stream connects, nor at the region that
handed it. Three real regional dispatchers (`python -m dispatcher`) on loopback: eu and us with phone bots
(tests/phone/phone_host.py running tests/regions/frame_echo_bot.py) and one carrier start each, eu
with room but a cold start quoted past PHONE_MAX_WAIT_SECONDS, us with a warm phone bot; ap quoting
the same cold start to callers who may wait 60 s. So a region with room but only a cold start past
the phone wait hands its calls over, and one whose callers may wait that long keeps them (the
decision itself, at each boundary: tests/dispatcher/regions/test_spill.py)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from tests.regions.support import regions, until
from tests.regions.test_phone_across_regions import (
    ECHO_BOT,
    TWILIO_TOKEN,
    stream_url,
    talk,
    twilio_webhook,
    us_can_take_a_call,
    ws_base,
)
from tests.regions.test_spill_over import peer_view
from tests.support.phone_dispatcher import PHONE_HOST
from tests.support.processes import DispatcherProcess

ONE_CARRIER_START = {"START_RATE_PER_KEY": "0.01", "START_BURST_PER_KEY": "1"}  # the next one in 100 s


def phone_bots(reports: Path) -> dict[str, str]:
    reports.mkdir()
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "LOCAL_BOT_COMMAND": shlex.join(PHONE_HOST),
            "PHONE_USER_BOT": str(ECHO_BOT), "PHONE_TEST_REPORTS": str(reports),
            "LOCAL_BOT_ENV": "PHONE_USER_BOT,PHONE_TEST_REPORTS", **ONE_CARRIER_START}


def demand(seen_by: DispatcherProcess, region: str) -> float:
    return float((peer_view(seen_by, region).get("capacity") or {}).get("demand_per_minute", 0))


async def test_a_call_past_the_phone_wait_is_handed_over_as_the_callers_regions_demand_and_one_carrier_start(
        tmp_path: Path) -> None:
    eu = {**phone_bots(tmp_path / "eu-reports"), "RESERVE_COLD_START_SECONDS": "20"}  # room, no idle bot
    ap = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "RESERVE_COLD_START_SECONDS": "20", "PHONE_MAX_WAIT_SECONDS": "60"}
    us = {**phone_bots(tmp_path / "us-reports"), "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2"}
    with regions(tmp_path, ("eu", "ap", "us"), {"eu": eu, "ap": ap, "us": us}) as (urls, running):
        until(lambda: us_can_take_a_call(running["eu"]) and us_can_take_a_call(running["ap"]), 60)
        handed = stream_url(twilio_webhook(running["eu"]))
        assert handed.startswith(ws_base(urls["us"]) + "/ws/twilio/"), handed
        assert "cold_start_over_max_wait" in running["eu"].log()
        # ap's callers may wait its cold start: ap keeps its call though us could take it warm.
        assert stream_url(twilio_webhook(running["ap"])).startswith(ws_base(urls["ap"]) + "/ws/twilio/")
        # us took its one carrier start when it minted the token: the stream's connecting takes none.
        await talk(handed)
        # The start is eu's demand (its caller's region), as a spilled start is; us only lent its bot.
        until(lambda: demand(running["us"], "eu") > 0, 60)
        time.sleep(3.0)  # us's planner has ticked and eu has read us since the session started there
        assert demand(running["eu"], "us") == 0
        # eu took none of its carrier starts for the call it handed: its own next call still starts.
        running["us"].process.kill()
        running["us"].process.wait()
        until(lambda: not peer_view(running["eu"], "us").get("reachable"), 60)
        here = stream_url(twilio_webhook(running["eu"]))
        assert here.startswith(ws_base(urls["eu"]) + "/ws/twilio/"), here
        await talk(here)
