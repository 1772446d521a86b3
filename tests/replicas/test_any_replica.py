"""Any replica answers any request: start at one, status, offer and stop at the others; the same
Idempotency-Key at two replicas at once gives one session and one bot.

The tests share one fleet of three replicas: each starts its own sessions (by its own keys, or none)
and checks only those. Every start is cold (no reserve), so each session's bot carries its session and
is counted as its own. A claimed reserve bot's session answering status, offer and stop at other
replicas is checked in tests/replicas/test_redial.py and tests/dispatcher/channel/test_replicas.py."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.replicas.conftest import Fleet, call, delete, get, post, start_fleet
from tests.support.processes import wait_gone
from tests.support.redis_server import redis_server


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("any-replica")
    with redis_server(root) as store, \
            start_fleet(root, store, 3, RESERVE_MAX_IDLE="0") as fleet:  # every start cold: bots are countable
        yield fleet


def started_elsewhere(fleet: Fleet, n: int) -> tuple[str, str]:
    """A session started at one replica, and the replica that started it."""
    first = fleet.replicas[n % len(fleet.replicas)].base_url
    answer = post(first, "/start?wait=started", json={"body": {"n": n}})
    assert answer.status_code == 201, answer.text
    return answer.json()["session_id"], first


def test_a_session_started_at_one_replica_answers_status_offer_and_stop_at_the_others(three: Fleet) -> None:
    for n in range(6):
        session_id, first = started_elsewhere(three, n)
        session_bots_before = three.sessions_of_bots()
        for other in three.others(first):
            status = get(other, f"/sessions/{session_id}")
            assert status.status_code == 200, status.text
            assert status.json()["status"] == "started"
            # Its timeline and trace, written at the replica that started it, read here (the store).
            timeline = get(other, f"/sessions/{session_id}/timeline")
            assert timeline.status_code == 200, timeline.text
            assert timeline.json()["events"][0]["event"] == "requested"
            assert status.json()["trace_id"] is not None
            assert timeline.json()["trace_id"] == status.json()["trace_id"]
            offer = post(other, f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
            assert offer.status_code == 200, f"{offer.text}\n{three.logs()}"
            assert offer.json()["sdp"] == "answer-to:v=0"
            owner_session, pid = offer.json()["bot"].split("/")
            assert owner_session == session_id
            ice = call("PATCH", other, f"/sessions/{session_id}/api/offer",
                       json={"pc_id": "standin-pc", "candidates": []})
            assert ice.status_code == 200, ice.text
        assert three.sessions_of_bots() == session_bots_before  # nothing launched by looking
        stopper = three.others(first)[n % 2]
        assert delete(stopper, f"/sessions/{session_id}").status_code in (202, 204)
        assert wait_gone([int(pid)]) == []
        ended = get(three.any(), f"/sessions/{session_id}")
        assert ended.status_code == 404 or ended.json()["status"] in ("ended", "failed")


KEYS_AT_ONCE = 20  # keys sent to two replicas at once; the start lease's arbitration itself, at
# every interleaving of two starts, against a real store: tests/dispatcher/store/test_starts.py


def test_the_same_key_at_two_replicas_at_once_gives_one_session_and_one_bot(three: Fleet) -> None:
    a, b, _ = (r.base_url for r in three.replicas)
    sessions = []
    with ThreadPoolExecutor(2) as pool:
        for n in range(KEYS_AT_ONCE):
            key = {"Idempotency-Key": f"at-once-{n}"}
            first, second = pool.map(lambda url, k=key: post(url, "/start", json={}, headers=k), (a, b))
            assert {first.status_code, second.status_code} == {200, 201}, (first.text, second.text)
            assert first.json()["session_id"] == second.json()["session_id"]
            sessions.append(first.json()["session_id"])
    bots = three.sessions_of_bots()
    assert {s: bots[s] for s in sessions} == dict.fromkeys(sessions, 1), "a key started more than one bot, or none"


def test_a_keyed_start_replayed_at_another_replica_matches_and_another_body_conflicts(three: Fleet) -> None:
    """The body's fingerprint is keyed (dispatcher/sessions/ids.py): every replica makes the same one."""
    a, b, c = (r.base_url for r in three.replicas)
    key = {"Idempotency-Key": "replayed-elsewhere"}
    first = post(a, "/start?wait=started", json={"body": {"phone": "+14155550123"}}, headers=key)
    assert first.status_code == 201, first.text
    again = post(b, "/start", json={"body": {"phone": "+14155550123"}}, headers=key)
    assert (again.status_code, again.json()["session_id"]) == (200, first.json()["session_id"]), again.text
    other = post(c, "/start", json={"body": {"phone": "+14155550124"}}, headers=key)
    assert other.status_code == 409, other.text
