"""A replica that owns one machine's end, for a test to kill within its grace: a real `create_app` on the
store named in its environment (`REDIS_URL` and the rest, as a replica's), whose session's machine ends
without its bot's report; it then serves nothing more until it is killed (or its grace runs out).

    python -m tests.dispatcher.sessions.grace_owner SESSION_ID GRACE_SECONDS

Its grace is the test's (`GRACE_SECONDS`, longer than the product's 3 s) so that a test killing it once the
store shows the end kept kills it within the grace however loaded the machine is; the rest is the product's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from dispatcher.app import create_app
from dispatcher.sessions import machine_end_grace
from dispatcher.settings import Settings
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


async def main(session_id: str, grace_seconds: float) -> None:
    machine_end_grace.MACHINE_END_GRACE_SECONDS = grace_seconds
    app = create_app(Settings(reaper_interval_seconds=0), env=dict(os.environ), machines=ListedMachines([]),
                     rooms=None)
    state = app.state.voicefleet
    timeline = state.sessions.timeline
    timeline.note(session_id, "requested", release="stable")
    timeline.note(session_id, "launched", machine_id="m-1")
    timeline.note(session_id, "machine_ended", at=time.time(), state="ended")  # its bot never reported
    await timeline.settled()
    assert state.machine_end_grace is not None
    await state.machine_end_grace.settled()  # its own finalisation, should nobody kill it first
    await state.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
