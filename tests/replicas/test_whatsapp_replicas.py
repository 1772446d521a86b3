"""WhatsApp calls across replicas: Meta's `connect` taken at one replica while the call's bot holds its
channel at another, the session ended or Meta's `terminate` delivered at a replica other than the one that
answered, and a hang-up Meta never answered: the call is answered through the bot's replica, hung up at
Meta exactly once whichever replica sees the end (or not at all when Meta ended it), and sent again
until Meta answers.

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


def sent(meta: FakeWhatsApp, action: str) -> int:
    return sum(1 for c in meta.calls_to("POST", "/calls") if (c.json() or {}).get("action") == action)


def ended_at(replica: DispatcherProcess, session_id: str) -> bool:
    answer = httpx.get(f"{replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    return answer.status_code == 404 or answer.json()["status"] in ("ended", "failed")


def timeline(replica: DispatcherProcess, session_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{replica.base_url}/sessions/{session_id}/timeline", headers=AUTH, timeout=DEADLINE)
    return list(answer.json()["events"])


def ends_told(replica: DispatcherProcess, session_id: str) -> bool:
    return {"stop_requested", "ended"} <= {e["event"] for e in timeline(replica, session_id)}


def test_a_call_whose_replica_died_is_hung_up_once_when_its_session_ends_at_another(
        fleet: Fleet, meta: FakeWhatsApp) -> None:
    (bots_replica, answering), _, _, _ = fleet
    call, session_id = answered_at(fleet, meta, answering)
    answering.process.kill()  # the replica that answered the call is gone: nothing of it is in any memory
    answering.process.wait(DEADLINE)
    stopped = httpx.delete(f"{bots_replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert stopped.status_code in (202, 204), stopped.text
    until("the call hung up at Meta", lambda: call.state == "terminated", lambda: logs(fleet))
    # The ends the session tells (the stop, its bot's own `ended`) have been seen by now.
    until("the session's stop and its bot's end on its timeline", lambda: ends_told(bots_replica, session_id),
          lambda: logs(fleet))
    assert call.actions == ["pre_accept", "accept", "terminate"]
    assert sent(meta, "terminate") == 1


def test_meta_s_terminate_at_another_replica_stops_the_session_and_hangs_nothing_up(
        fleet: Fleet, meta: FakeWhatsApp) -> None:
    replicas, _, _, _ = fleet
    bots_replica, answering = replicas
    call, session_id = answered_at(fleet, meta, answering)
    deliver(bots_replica, meta.terminate_webhook(call))  # the caller hung up; Meta's webhook reached r-0
    until("the session ended at both replicas", lambda: all(ended_at(r, session_id) for r in replicas),
          lambda: logs(fleet))
    until("the session's stop and its bot's end on its timeline", lambda: ends_told(bots_replica, session_id),
          lambda: logs(fleet))
    answers = [e for e in timeline(bots_replica, session_id) if e["event"] == "whatsapp_answer"]
    assert [e.get("action") for e in answers] == ["accept"], answers  # no hang-up of a call Meta ended
    assert sent(meta, "terminate") == 0 and sent(meta, "reject") == 0


def test_a_terminate_meta_never_answered_is_sent_again_until_it_is(fleet: Fleet, meta: FakeWhatsApp) -> None:
    (bots_replica, answering), _, _, _ = fleet
    call, session_id = answered_at(fleet, meta, answering)
    failing = meta.fail(503, times=BACKOFF.attempts, path_contains="/calls")  # every try of the first hang-up
    stopped = httpx.delete(f"{bots_replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert stopped.status_code in (202, 204), stopped.text
    until("the call hung up at Meta", lambda: call.state == "terminated", lambda: logs(fleet))
    assert failing.times == 0  # the first hang-up's tries all failed…
    assert call.actions == ["pre_accept", "accept", "terminate"]
    assert sent(meta, "terminate") == BACKOFF.attempts + 1  # …and one more, by the sweep, went through
    until("the reconciled hang-up on the timeline",
          lambda: any(e["event"] == "whatsapp_answer" and e.get("reason") == "reconciled"
                      for e in timeline(bots_replica, session_id)), lambda: logs(fleet))


def test_a_terminate_whose_replica_died_sending_it_is_sent_by_another(
        tmp_path: Path, store: RedisServer, fake_fly: FakeFly, meta: FakeWhatsApp) -> None:
    with whatsapp_fleet(tmp_path, store, fake_fly, meta, 3) as fleet:
        (bots_replica, answering, survivor), _, _, _ = fleet
        call, session_id = answered_at(fleet, meta, answering)
        answering.process.kill()  # so the end is seen, and the hang-up sent, at the bots' replica alone
        answering.process.wait(DEADLINE)
        held = meta.hold(path_contains="/calls", times=1)  # Meta never answers the first terminate…
        stopped = httpx.delete(f"{bots_replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
        assert stopped.status_code in (202, 204), stopped.text
        until("the first terminate sent", lambda: held.caught == 1, lambda: logs(fleet))
        bots_replica.process.kill()  # …and the replica that sent it dies waiting
        bots_replica.process.wait(DEADLINE)
        until("the call hung up at Meta", lambda: call.state == "terminated", lambda: logs(fleet))
        held.release()  # the lost request lands late: Meta refuses it, the call being over
        assert call.actions == ["pre_accept", "accept", "terminate"]
        assert sent(meta, "terminate") == 2  # the one lost with its replica, and the survivor's sweep
        assert any(e["event"] == "whatsapp_answer" and e.get("reason") == "reconciled"
                   for e in timeline(survivor, session_id))
