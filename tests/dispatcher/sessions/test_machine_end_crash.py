"""A replica killed (SIGKILL) within a machine's end's grace, on a real redis-server: the owner is a process of
its own (grace_owner.py) whose session's machine ended without its bot's report; once the store keeps that end
it is killed. The survivor (a replica in this process, its sweep running) finalises the end once: the session is
in the usage once and `session.ended` is pushed once, as the machine's end, or as the bot's report where that
report reached the survivor after the crash."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.sessions.machine_end_grace import LEASE_SECONDS, OWNER_MARGIN_SECONDS
from dispatcher.wiring import running
from tests.dispatcher.sessions.test_machine_end_grace_store import replica, sessions_counted
from tests.dispatcher.sessions.test_webhooks import SECRET, verified_into
from tests.support.hook_receiver import hook_receiver
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import within

SESSION = "grace-crashed-owner-1"
UNWRITTEN = "grace-crashed-owner-2"  # its owner's timeline writes never reach the store
OWNER_GRACE = "10"  # the owner's grace: far longer than a loaded machine takes to see its end kept and kill it
KEPT = "{voicefleet}:machine-ends:handed-over"


def timeline_of(session: str) -> str:
    return f"{{voicefleet}}:timeline:{session}"


def record_of(session: str) -> str:
    return f"{{voicefleet}}:machine-ends:record:{session}"


TIMELINE, RECORD = timeline_of(SESSION), record_of(SESSION)
# The owner's grace and margin, then a sweep whose finaliser met a slow store (its claim's lease, tried again),
# and a loaded machine's minute on top.
PATIENT = float(OWNER_GRACE) + OWNER_MARGIN_SECONDS + 2 * LEASE_SECONDS + 60.0
MINI = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 2700}


async def owner_killed_within_its_grace(store: RedisServer, url: str, *, unwritten: bool = False,
                                        session: str = SESSION) -> None:
    """Starts the owner, and SIGKILLs it once the store keeps its session's machine end (`unwritten`: its
    timeline's writes never reach the store, only the kept end's record does)."""
    env = {**os.environ, **store.env, "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
    owner = subprocess.Popen([sys.executable, "-m", "tests.dispatcher.sessions.grace_owner", session, OWNER_GRACE,
                              *(["unwritten"] if unwritten else [])], env=env)
    try:
        deadline = time.monotonic() + PATIENT
        # Its end kept, with its record, and (unless unwritten) its timeline's three records in the store.
        while (store.admin().zscore(KEPT, session) is None or not store.admin().exists(record_of(session))
               or (not unwritten and store.admin().llen(timeline_of(session)) < 3)):
            assert owner.poll() is None, "the owner finalised (or failed) without its end ever kept in the store"
            assert time.monotonic() < deadline, "the owner's machine end was never kept in the store"
            await asyncio.sleep(0.02)  # the survivor (this loop) serves meanwhile
    finally:
        owner.kill()
        owner.wait(timeout=30)


async def test_a_replica_killed_within_the_grace_has_its_end_counted_and_pushed_once_by_another(
        tmp_path: Path) -> None:
    """Two owners killed at once: one whose timeline reached the store, one whose timeline never did
    (it died before its writes landed; only its kept end's record has them)."""
    received: list[dict] = []
    sessions = {SESSION: False, UNWRITTEN: True}  # session: its timeline unwritten

    def ended_of(session: str) -> list[dict]:
        return [e for e in received if e["type"] == "session.ended" and e["data"]["session_id"] == session]

    with redis_server(tmp_path) as store:
        async with hook_receiver(verified_into(received)) as url:
            survivor = replica(store, url)
            async with running(survivor.state.voicefleet):  # its sweep running
                await asyncio.gather(*(owner_killed_within_its_grace(store, url, unwritten=unwritten, session=session)
                                       for session, unwritten in sessions.items()))
                for session, unwritten in sessions.items():
                    assert store.admin().llen(timeline_of(session)) == (0 if unwritten else 3), session
                assert not [e for e in received if e["type"] == "session.ended"], "pushed within the owners' grace"
                assert await sessions_counted(survivor) == 0, "counted within the owners' grace"
                for session in sessions:
                    assert await within(lambda s=session: ended_of(s), timeout=PATIENT), f"{session} never pushed"
                assert await within(lambda: sessions_counted(survivor), timeout=PATIENT) == len(sessions)
                assert await within(lambda: store.admin().zcard(KEPT) == 0, timeout=PATIENT)
                events = {s: await survivor.state.voicefleet.sessions.timeline.read(s) for s in sessions}
        for session in sessions:
            assert [e["data"]["reason"] for e in ended_of(session)] == ["machine_ended"], f"{session} not pushed once"
            assert store.admin().keys(f"*usage:counted:{session}"), f"{session} not counted"
            assert not store.admin().exists(record_of(session)), f"{session}'s record not taken with its entry"
            # The timeline as its owner saw it (written back from the record where it never reached the store).
            assert [e["event"] for e in events[session]] == ["requested", "launched", "machine_ended"], session
        assert len(store.admin().keys("*usage:counted:*")) == len(sessions)  # each session, once


async def test_a_bot_report_reaching_the_survivor_after_the_owners_crash_is_the_end_counted_once(
        tmp_path: Path) -> None:
    received: list[dict] = []
    with redis_server(tmp_path) as store:
        async with hook_receiver(verified_into(received)) as url:
            survivor = replica(store, url)
            state = survivor.state.voicefleet
            async with running(state):
                await owner_killed_within_its_grace(store, url)
                # The bot's own end, late: it re-dialled the survivor and reported there.
                state.sessions.timeline.note(SESSION, "ended", at=time.time(), reason="peer_left", usage=[MINI])
                assert await within(lambda: any(e["type"] == "session.ended" for e in received), timeout=PATIENT)
                assert await within(lambda: sessions_counted(survivor), timeout=PATIENT) == 1
                # The kept machine end, finalised by the sweep once its margin is over, adds nothing.
                assert await within(lambda: store.admin().zcard(KEPT) == 0, timeout=PATIENT)
                day = datetime.now(UTC).date()
                models = await state.usage.rollups.grouped(day, day, "model", None)
        assert [e["data"]["reason"] for e in received if e["type"] == "session.ended"] == ["peer_left"]
        assert "llm:gpt-4o-mini" in models and models[""]["sessions"] == 1, models
        assert len(store.admin().keys("*usage:counted:*")) == 1

