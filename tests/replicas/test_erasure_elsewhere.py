"""An erasure asked at a replica that does not hold the session's bot, while the replica that does
is still writing the session's end (its recording completed, then its transcript, logs and report):
refused until that end is written, then complete. Two real dispatchers on one redis-server and one
shared recordings folder; the stand-in bot ends as the bot's recorder does (one 5 MiB part, its log
lines, a two-exchange transcript)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dispatcher.artifacts.local_store import NAMES_SECRET
from tests.replicas.conftest import delete, get, post, start_fleet
from tests.support.redis_server import RedisServer

FINISHED = ("recording_ready", "recording_partial", "recording_missing")
ROUNDS = 4


def timeline(base_url: str, session_id: str) -> list[str]:
    answer = get(base_url, f"/sessions/{session_id}/timeline")
    return [e["event"] for e in answer.json()["events"]] if answer.status_code == 200 else []


def erased_meanwhile(base_url: str, session_id: str) -> list[httpx.Response]:
    """The erasure asked every 10 ms from the stop on until it is done (or answered anything but 409)."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers.append(delete(base_url, f"/sessions/{session_id}/artifacts"))
        if answers[-1].status_code != 409:
            break
        time.sleep(0.01)
    return answers


def wait_finished(base_url: str, session_id: str) -> None:
    """Until the holder's end of the session is written (its timeline's last recording event)."""
    deadline = time.monotonic() + 30
    while not any(event in FINISHED for event in timeline(base_url, session_id)):
        assert time.monotonic() < deadline, timeline(base_url, session_id)
        time.sleep(0.1)
    time.sleep(0.5)  # what it may still delete after its last check


def kept(folder: Path) -> list[str]:
    """Every object of a session left in the folder store (erasure records are kept on purpose, and the
    folder's own owner secret is the dispatcher's, no session's)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).parts[0] not in ("erasures", ".holds", ".uploads",
                                                                            NAMES_SECRET))


@pytest.mark.slow  # two dispatchers, a cold bot a round: under a minute, longer on a busy machine
@pytest.mark.timeout(600)
def test_an_erasure_retried_at_another_replica_after_the_stop_leaves_no_object(tmp_path: Path,
                                                                                 store: RedisServer) -> None:
    folder = tmp_path / "recordings"
    with start_fleet(tmp_path, store, 2, RECORDING="on", RECORDING_DESTINATION=str(folder), STANDIN_MODE="record",
                     RESERVE_MAX_IDLE="0") as fleet:
        holder, other = (r.base_url for r in fleet.replicas)
        for _ in range(ROUNDS):
            started = post(holder, "/start?wait=started", json={})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            with ThreadPoolExecutor(1) as pool:  # the stop answers once the bot is gone: the client does not wait
                stopped = pool.submit(delete, holder, f"/sessions/{session_id}")
                answers = erased_meanwhile(other, session_id)
                assert stopped.result().status_code in (202, 204)
            assert answers[-1].status_code == 200, f"{[a.text for a in answers[-3:]]}\n{fleet.logs()}"
            wait_finished(holder, session_id)
            events = timeline(holder, session_id)
            assert kept(folder) == [], f"left after the erasure: {kept(folder)}\n{events}"
            erased = {name.rsplit("/", 1)[1] for name in answers[-1].json()["erased"]}
            assert erased >= {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json"}, erased
            assert get(holder, f"/sessions/{session_id}/artifacts").status_code == 404
            refused = answers[:-1]
            assert all(a.status_code == 409 and a.json()["error"]["code"] == "recording_in_progress"
                       and a.headers.get("retry-after") for a in refused), [(a.text, a.headers) for a in refused]
