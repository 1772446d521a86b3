"""Capacity and API keys changed at runtime, with two real `python -m dispatcher` replicas on one real
redis-server (the AWS stack's store user), through the `voicefleet` CLI: a change at one replica is
applied at the other and kept for a replica started after it; a key created at one starts a session at
the other; a revoked one is refused there; a rotation keeps every session reachable, with no restart.
Nothing is timed: each wait polls with a generous deadline.

The tests share one pair of replicas: each makes and revokes a key name of its own, and the one that
changes capacity reads only the capacity lines of the audit and sets back the cap it checks the
other tests' starts against (its key's share applies to `team`, which only it uses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.replicas.conftest import TIMEOUT, replica_env
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ADMIN_KEY = "vf-runtime-replicas-admin-3e8b1d0c7a"
TEAM_KEY = "team-runtime-replicas-key-9c4f2a61d0"
TOKEN = "runtime-settings-replicas-deployment-secret-01"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DEADLINE = 60.0  # generous: the replicas read each other's change at its nudge, or within a second


def env_of(store: RedisServer, tmp_path: Path, name: str) -> dict[str, str]:
    return replica_env(store, str(tmp_path), name, DISPATCHER_API_KEYS=f"team:{TEAM_KEY}",
                       DISPATCHER_ADMIN_KEYS=ADMIN_KEY, BOT_CHANNEL_TOKEN=TOKEN, RESERVE_MAX_IDLE="0")


@dataclass
class Pair:
    replicas: list[DispatcherProcess]
    store: RedisServer
    root: Path  # a replica started later keeps its logs here


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp_path = tmp_path_factory.mktemp("runtime-settings")
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(tmp_path))
        replicas = []
        for n in range(2):
            (tmp_path / f"r{n}").mkdir()
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}", env_of(store, tmp_path, f"r-{n}"))))
        yield Pair(replicas, store, tmp_path)


@pytest.fixture
def pair(shared: Pair) -> list[DispatcherProcess]:
    return shared.replicas


def cli(replica: DispatcherProcess, *args: str) -> str:
    result = CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                                env={"VOICEFLEET_URL": replica.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    return result.stdout


def call(method: str, replica: DispatcherProcess, path: str, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, replica.base_url + path, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


def capacity(replica: DispatcherProcess) -> dict[str, Any]:
    answer = httpx.get(replica.base_url + "/capacity", headers=ADMIN, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    values: dict[str, Any] = answer.json()["values"]
    return values


def start(replica: DispatcherProcess, key: str) -> httpx.Response:
    return call("POST", replica, "/start?wait=started", key, json={"body": {}})


def test_a_capacity_change_at_one_replica_is_applied_at_the_other_and_outlives_them(shared: Pair) -> None:
    (here, there), store, tmp_path = shared.replicas, shared.store, shared.root
    cli(here, "capacity", "set", "sessions=1", "key.team=1")
    try:
        wait_until(lambda: capacity(there)["sessions"]["value"] == 1, "the cap applied at the other replica",
                   timeout=DEADLINE, interval=0.1, detail=there.log)
        assert capacity(there)["key.team"]["value"] == 1
        first = start(there, TEAM_KEY)
        assert first.status_code == 201, first.text
        # Refused where the cap was applied, not where it was set. Not at `here`: two local replicas each
        # list only their own processes, so a recount there may not see this session at all (a provider
        # both replicas list, as ECS, counts it for the deployment: tests/replicas/ admission tests).
        refused = start(there, TEAM_KEY)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "at_capacity"
        assert call("GET", here, f"/sessions/{first.json()['session_id']}", TEAM_KEY).json()["status"] == "started"
        lines = [line for line in json.loads(cli(there, "audit", "--runtime", "--json"))["lines"]
                 if line["action"] == "capacity.set"]  # the other tests' keys are made and revoked here too
        assert {(line["name"], line["old"], line["new"]) for line in lines} == {("sessions", None, 1),
                                                                                ("key.team", None, 1.0)}
        (tmp_path / "late").mkdir()
        with run_dispatcher(tmp_path / "late", env_of(store, tmp_path, "r-late")) as late:
            kept = capacity(late)["sessions"]  # read from the store before it served
            assert (kept["value"], kept["setting"], kept["runtime"]) == (1, 500, 1)
    finally:  # set back however the test ends: the other tests start sessions on these replicas
        cli(here, "capacity", "set", "sessions=default")
    wait_until(lambda: capacity(there)["sessions"]["value"] == 500, "the setting back at the other replica",
               timeout=DEADLINE, interval=0.1, detail=there.log)
    assert start(there, TEAM_KEY).status_code == 201


def secret_of(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_a_key_made_at_one_replica_starts_a_session_at_the_other_and_is_refused_there_once_revoked(
        pair: list[DispatcherProcess]) -> None:
    here, there = pair
    secret = secret_of(cli(here, "keys", "create", "acme-made"))
    answer = wait_until(lambda: (a := start(there, secret)).status_code == 201 and a,
                        "the new key taken at the other replica", timeout=DEADLINE, interval=0.1, detail=there.log)
    assert isinstance(answer, httpx.Response)
    session_id = answer.json()["session_id"]
    assert "acme-made" in cli(here, "keys", "list")
    cli(here, "keys", "revoke", "acme-made")
    wait_until(lambda: call("GET", there, f"/sessions/{session_id}", secret).status_code == 401,
               "the revoked key refused at the other replica (its verified-secret cache too)", timeout=DEADLINE,
               interval=0.1, detail=there.log)
    assert start(there, secret).status_code == 401
    # Its session stays reachable, to an admin key, on the record.
    assert call("GET", there, f"/sessions/{session_id}", ADMIN_KEY).json()["status"] == "started"
    assert call("DELETE", there, f"/sessions/{session_id}", ADMIN_KEY).status_code in (202, 204)


def test_a_rotation_keeps_every_session_reachable_without_a_restart(pair: list[DispatcherProcess]) -> None:
    here, there = pair
    old = secret_of(cli(here, "keys", "create", "acme-rotated"))
    old_id = old.split("_")[1]
    wait_until(lambda: call("GET", there, "/sessions", old).status_code == 200, "the key at the other replica",
               timeout=DEADLINE, interval=0.1, detail=there.log)
    started = start(there, old)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    new = secret_of(cli(there, "keys", "create", "acme-rotated", "--another"))
    wait_until(lambda: call("GET", here, "/sessions", new).status_code == 200, "the new secret at the first replica",
               timeout=DEADLINE, interval=0.1, detail=here.log)
    cli(here, "keys", "revoke", "--secret-id", old_id)
    wait_until(lambda: call("GET", there, "/sessions", old).status_code == 401, "the old secret refused",
               timeout=DEADLINE, interval=0.1, detail=there.log)
    for replica in pair:  # the name's session, read with its new secret at either replica
        read = call("GET", replica, f"/sessions/{session_id}", new)
        assert read.status_code == 200, read.text
    assert call("DELETE", there, f"/sessions/{session_id}", new).status_code in (202, 204)


def code_of(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def listed(replica: DispatcherProcess, secret_id: str) -> bool:
    keys = call("GET", replica, "/keys", ADMIN_KEY).json()["keys"]
    return any(row["secret_id"] == secret_id for row in keys)


def test_a_secret_revoked_before_a_replica_ever_verified_it_is_told_revoked_there_too(
        pair: list[DispatcherProcess]) -> None:
    """Its holder reads `api_key_revoked` at every replica, not only where it was verified: revoked
    alone (by its id) or with its whole name."""
    here, there = pair
    first = secret_of(cli(here, "keys", "create", "acme-revoked"))
    second = secret_of(cli(here, "keys", "create", "acme-revoked", "--another"))
    for secret in (first, second):  # verified at `here` only: `there` never checked either
        assert call("GET", here, "/sessions", secret).status_code == 200
    for revoke, secret in ((("--secret-id", first.split("_")[1]), first), (("acme-revoked",), second)):
        cli(here, "keys", "revoke", *revoke)
        secret_id = secret.split("_")[1]
        wait_until(lambda: not listed(there, secret_id), "the revocation read at the other replica",  # noqa: B023
                   timeout=DEADLINE, interval=0.1, detail=there.log)
        for replica in pair:
            answer = call("GET", replica, "/sessions", secret)
            assert (answer.status_code, code_of(answer)) == (401, "api_key_revoked"), (replica.base_url, answer.text)
    guess = call("GET", there, "/sessions", first[:-4] + "abcd")  # its id, not its secret: told nothing more
    assert (guess.status_code, code_of(guess)) == (401, "unauthorized"), guess.text
