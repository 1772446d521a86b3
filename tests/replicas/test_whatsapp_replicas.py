"""WhatsApp calls across replicas: Meta's `connect` taken at one replica while the call's bot holds its
channel at another, the session ended or Meta's `terminate` delivered at a replica other than the one that
answered, and a hang-up Meta never answered: the call is answered through the bot's replica, hung up at
Meta exactly once whichever replica sees the end (or not at all when Meta ended it), and sent again
until Meta answers. A hang-up lost with the replica that was sending it, sent by another once its
claim (30 s) lapses, is checked on a clock the test moves: tests/replicas/test_whatsapp_hang_up_lost_mid_send.py.

Real processes: redis-server with the stack's store user, two `python -m dispatcher` replicas on the
fake Fly API, a bot process per Fly machine that outlives any replica (tests/replicas/fly_bots.py), its
channel sent to r-0 by the balancer; Meta played by its strict fake (tests/fakes/whatsapp.py), whose
Graph requests are counted. The bot answers an offer with `answer-to:` and the offer, which the fake
judges after that prefix (tests/phone/test_whatsapp_faults.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.whatsapp.graph import BACKOFF
from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp, FakeWhatsAppCall
from tests.phone.test_whatsapp_faults import standin_answers
from tests.phone.test_whatsapp_webhook import OFFER
from tests.replicas.test_redial import AUTH, DEADLINE, KEY, Fleet, fly_fleet, until
from tests.support.processes import DispatcherProcess
from tests.support.redis_server import RedisServer

__all__ = ["fake_fly", "standin_answers"]
pytestmark = pytest.mark.slow  # two dispatchers, a redis-server and a bot process per call


@pytest.fixture
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp()) as fake:
        yield fake


@contextmanager
def whatsapp_fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly, meta: FakeWhatsApp,
                   replicas: int) -> Iterator[Fleet]:
    # The number's calls run as the fleet's key, named; no idle bots: each call's bot is launched for it.
    whatsapp = {**meta.env(f"{PHONE_NUMBER_ID}=support"), "DISPATCHER_API_KEYS": f"support:{KEY}",
                "RESERVE_MAX_IDLE": "0"}
    with fly_fleet(tmp_path, store, fake_fly, [whatsapp] * replicas) as running:
        yield running


@pytest.fixture
def fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly, meta: FakeWhatsApp) -> Iterator[Fleet]:
    with whatsapp_fleet(tmp_path, store, fake_fly, meta, 2) as running:
        yield running


def logs(fleet: Fleet) -> str:
    return "\n".join(f"--- {r.base_url}\n{r.log()[-3000:]}" for r in fleet[0])


def deliver(replica: DispatcherProcess, webhook: tuple[bytes, dict[str, str]]) -> None:
    body, headers = webhook
    answer = httpx.post(f"{replica.base_url}/phone/whatsapp", content=body, headers=headers, timeout=DEADLINE)
    assert (answer.status_code, answer.json().get("taken")) == (200, 1), answer.text


def session_of(fleet: Fleet, replica: DispatcherProcess, call: FakeWhatsAppCall) -> str:
    def listed() -> str | None:
        sessions = httpx.get(f"{replica.base_url}/sessions", headers=AUTH, timeout=DEADLINE).json()["sessions"]
        return next((s["session_id"] for s in sessions if (s.get("whatsapp") or {}).get("call_id") == call.call_id),
                    None)

    return str(until("the call's session listed", listed, lambda: logs(fleet)))


def answered_at(fleet: Fleet, meta: FakeWhatsApp, replica: DispatcherProcess) -> tuple[FakeWhatsAppCall, str]:
    """A call whose `connect` reached `replica`, accepted with the answer of its bot, whose channel is at r-0."""
    call = meta.ring(OFFER)
    deliver(replica, meta.connect_webhook(call))
    until("the call accepted", lambda: call.state == "accepted" or call.ended.is_set(), lambda: logs(fleet))
    assert call.actions == ["pre_accept", "accept"], f"{call.actions} {meta.refusals}\n{logs(fleet)}"
    session_id = session_of(fleet, replica, call)
    assert fleet[3].get(f"{{voicefleet}}:owner:{session_id}") == "r-0"  # its bot answered from another replica
    return call, session_id


def sent(meta: FakeWhatsApp, call: FakeWhatsAppCall, action: str) -> int:
    """The `action` requests sent to Meta for `call`, whatever Meta answered."""
    return sum(1 for c in meta.calls_to("POST", "/calls")
               if (c.json() or {}).get("action") == action and (c.json() or {}).get("call_id") == call.call_id)


def stop(replica: DispatcherProcess, session_id: str) -> None:
    stopped = httpx.delete(f"{replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert stopped.status_code in (202, 204), stopped.text


def ended_at(replica: DispatcherProcess, session_id: str) -> bool:
    answer = httpx.get(f"{replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    return answer.status_code == 404 or answer.json()["status"] in ("ended", "failed")


def timeline(replica: DispatcherProcess, session_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{replica.base_url}/sessions/{session_id}/timeline", headers=AUTH, timeout=DEADLINE)
    return list(answer.json()["events"])


def ends_told(replica: DispatcherProcess, session_id: str) -> bool:
    return {"stop_requested", "ended"} <= {e["event"] for e in timeline(replica, session_id)}


@pytest.mark.timeout(540)  # the three tests' 180 s each, merged over one fleet
def test_calls_ended_at_a_replica_other_than_the_one_that_answered_are_hung_up_at_meta_exactly_as_owed(
        fleet: Fleet, meta: FakeWhatsApp) -> None:
    """Three calls answered at r-1, each while its bot's channel is at r-0 (one fleet for the three: its
    start is most of their cost), each ended another way; every claim is about its own call."""
    replicas, _, _, _ = fleet
    bots_replica, answering = replicas
    hung_up_by_meta, unanswered_once, orphaned = (answered_at(fleet, meta, answering) for _ in range(3))

    # Meta's `terminate` reaching the other replica stops the session there and at the answering one,
    # and nothing is hung up: Meta ended the call itself.
    call, session_id = hung_up_by_meta
    deliver(bots_replica, meta.terminate_webhook(call))  # the caller hung up; Meta's webhook reached r-0
    until("Meta's terminate: the session ended at both replicas",
          lambda: all(ended_at(r, session_id) for r in replicas), lambda: logs(fleet))
    until("Meta's terminate: the session's stop and its bot's end on its timeline",
          lambda: ends_told(bots_replica, session_id), lambda: logs(fleet))
    answers = [e for e in timeline(bots_replica, session_id) if e["event"] == "whatsapp_answer"]
    assert [e.get("action") for e in answers] == ["accept"], f"a call Meta ended was hung up again: {answers}"
    assert (sent(meta, call, "terminate"), sent(meta, call, "reject")) == (0, 0), "a call Meta ended was hung up again"

    # A hang-up Meta never answered (every try of the first one) is sent again by the sweep until it is.
    call, session_id = unanswered_once
    failing = meta.fail(503, times=BACKOFF.attempts, path_contains="/calls")  # every try of the first hang-up
    stop(bots_replica, session_id)
    until("the unanswered hang-up: the call hung up at Meta", lambda: call.state == "terminated", lambda: logs(fleet))
    assert failing.times == 0, "the unanswered hang-up: the first hang-up's tries did not all fail"
    assert call.actions == ["pre_accept", "accept", "terminate"], f"the unanswered hang-up: {call.actions}"
    # The first hang-up's tries, and one more, by the sweep, that went through.
    assert sent(meta, call, "terminate") == BACKOFF.attempts + 1, "the unanswered hang-up: not sent again once"
    until("the unanswered hang-up: the reconciled hang-up on the timeline",
          lambda: any(e["event"] == "whatsapp_answer" and e.get("reason") == "reconciled"
                      for e in timeline(bots_replica, session_id)), lambda: logs(fleet))

    # The replica that answered a call dies: the session's end at another replica hangs the call up, once.
    call, session_id = orphaned
    answering.process.kill()  # the replica that answered the call is gone: nothing of it is in any memory
    answering.process.wait(DEADLINE)
    stop(bots_replica, session_id)
    until("its replica dead: the call hung up at Meta", lambda: call.state == "terminated", lambda: logs(fleet))
    # The ends the session tells (the stop, its bot's own `ended`) have been seen by now.
    until("its replica dead: the session's stop and its bot's end on its timeline",
          lambda: ends_told(bots_replica, session_id), lambda: logs(fleet))
    assert call.actions == ["pre_accept", "accept", "terminate"], f"its replica dead: {call.actions}"
    assert sent(meta, call, "terminate") == 1, "its replica dead: not hung up exactly once"
