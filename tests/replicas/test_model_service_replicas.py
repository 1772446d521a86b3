"""Two replicas on one store (a real redis-server signed in as the AWS stack's store user) admit
starts against one shared model service: the starts under way count wherever they were admitted,
so a burst spread over the replicas is never admitted past the service's free streams."""

from __future__ import annotations

from pathlib import Path

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
