"""Two replicas on one store (a real redis-server signed in as the AWS stack's store user) admit
starts against one shared model service: the starts under way count wherever they were admitted,
so a burst spread over the replicas is never admitted past the service's free streams."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fakes.moshi_server import model_server_process
from tests.replicas.conftest import post, start_fleet
from tests.support.redis_server import RedisServer


def test_a_start_admitted_at_one_replica_counts_against_the_free_streams_at_the_other(
        tmp_path: Path, store: RedisServer) -> None:
    with model_server_process(streams=2) as model, start_fleet(
            tmp_path, store, 2, RESERVE_MAX_IDLE="0", MODEL_SERVICE_URL=model.url, MODEL_SERVICE_READ_SECONDS="1",
            # The stand-in bots never open a stream: each start counts for the whole test.
            MODEL_SERVICE_CONNECT_SECONDS="600") as fleet:
        first, second = (replica.base_url for replica in fleet.replicas)
        assert post(first, "/start", json={}).status_code == 201
        assert post(second, "/start", json={}).status_code == 201
        for replica in (first, second):  # each replica admitted one: the service's two are spoken for
            refused = post(replica, "/start", json={})
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "model_service_capacity" and "0 of 2 free" in error["message"], error
            assert "2 starting" in error["message"], error


def test_a_key_holds_no_more_than_its_share_of_the_streams_at_either_replica(
        tmp_path: Path, store: RedisServer) -> None:
    # Two keys share a 4-stream service (KEY_SESSION_SHARE 0.5: 2 streams a key): the first key's
    # starts, alternating replicas, take its 2 and are then refused for its share, not for the
    # service; the second key still gets its 2.
    keys = {"team": "team-streams-replicas-key-3f8a1c7e52", "other": "other-streams-replicas-key-9d4b2e6a13"}
    with model_server_process(streams=4) as model, start_fleet(
            tmp_path, store, 2, RESERVE_MAX_IDLE="0", MODEL_SERVICE_URL=model.url, MODEL_SERVICE_READ_SECONDS="1",
            MODEL_SERVICE_CONNECT_SECONDS="600", KEY_SESSION_SHARE="0.5",
            DISPATCHER_API_KEYS=",".join(keys.values())) as fleet:
        replicas = [replica.base_url for replica in fleet.replicas]

        def start(key: str, n: int) -> httpx.Response:
            return post(replicas[n % 2], "/start", json={}, headers={"Authorization": f"Bearer {key}"})

        team = [start(keys["team"], n) for n in range(4)]
        assert [a.status_code for a in team] == [201, 201, 429, 429], [a.text for a in team]
        error = team[2].json()["error"]
        assert error["code"] == "key_model_share" and error["key_streams"] == 2, error
        assert "already runs 2 sessions" in error["message"] and "0.5 of its 4: 2" in error["message"], error
        other = [start(keys["other"], n) for n in range(2)]
        assert [a.status_code for a in other] == [201, 201], [a.text for a in other]
