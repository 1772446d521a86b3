"""A replica that owns one machine's end, for a test to kill within its grace: a real `create_app` on the
store named in its environment (`REDIS_URL` and the rest, as a replica's), whose session's machine ends
without its bot's report; it then serves nothing more until it is killed (or its grace runs out).

    python -m tests.dispatcher.sessions.grace_owner SESSION_ID GRACE_SECONDS [unwritten]

Its grace is the test's (`GRACE_SECONDS`, longer than the product's 3 s) so that a test killing it once the
store shows the end kept kills it within the grace however loaded the machine is; the rest is the product's.
With `unwritten`, its timeline's writes never reach the store (a store slow to take them, the replica killed
meanwhile): only its kept machine end carries the session's timeline.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from dispatcher.app import create_app
from dispatcher.sessions import machine_end_grace
from dispatcher.settings import Settings
from dispatcher.store.timelines import StoreTimelines
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


async def never_written(self: StoreTimelines, session_id: str, event: object) -> None:
    await asyncio.Event().wait()  # the store never answers this write


async def main(session_id: str, grace_seconds: float, unwritten: bool) -> None:
    machine_end_grace.MACHINE_END_GRACE_SECONDS = grace_seconds
    if unwritten:
        StoreTimelines.append = never_written  # type: ignore[method-assign]
    app = create_app(Settings(reaper_interval_seconds=0), env=dict(os.environ), machines=ListedMachines([]),
                     rooms=None)
    state = app.state.voicefleet
    timeline = state.sessions.timeline
    timeline.note(session_id, "requested", release="stable")
    timeline.note(session_id, "launched", machine_id="m-1")
    timeline.note(session_id, "machine_ended", at=time.time(), state="ended")  # its bot never reported
    if not unwritten:
        await timeline.settled()
    assert state.machine_end_grace is not None
    await state.machine_end_grace.settled()  # its own finalisation, should nobody kill it first
    await state.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:] == ["unwritten"]))
