"""A key's budgets across two real `python -m dispatcher` replicas on one real redis-server (the AWS
stack's store user), set through the `voicefleet` CLI: a budget set at one replica refuses the key's
next start at the other within 2 s, lifting it admits one there again; the sessions a key opens at
either replica count against its budget of sessions at once; the 80 % and 100 % webhooks arrive once
each, whichever replicas see the budget crossed, verified by a receiver with the Standard Webhooks
library.

The tests share one fleet: each limits a key of its own (`team`, `other`), and counts only its own
key's sessions and webhooks, so what one leaves running or delivered is no other's."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.replicas.conftest import TIMEOUT, replica_env
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher, terminate
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # two real dispatchers, their bots, a redis-server and a receiver

ADMIN_KEY = "vf-budget-replicas-admin-6b2e0d9c41"
TEAM_KEY = "team-budget-replicas-key-3f8a1c7e52"
OTHER_KEY = "other-budget-replicas-key-9d4b2e6a13"
TOKEN = "budget-replicas-deployment-secret-0123456"
SECRET = "whsec_" + base64.b64encode(b"budget-replicas-webhook-secret-3").decode()
PROPAGATION_SECONDS = 2.0  # what a budget change is promised to take to reach every replica


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[DispatcherProcess], Path]]:
    tmp_path = tmp_path_factory.mktemp("key-budgets")
    port, out = free_port(), tmp_path / "received.jsonl"
    receiver = subprocess.Popen([sys.executable, "-m", "tests.replicas.webhook_receiver", str(port), str(out)],
                                env={**os.environ, "WEBHOOK_SECRET": SECRET})
    try:
        with ExitStack() as stack:
            store = stack.enter_context(redis_server(tmp_path))
            replicas = []
            for n in range(2):
                (tmp_path / f"r{n}").mkdir()
                env = replica_env(store, str(tmp_path), f"r-{n}",
                                  DISPATCHER_API_KEYS=f"team:{TEAM_KEY},other:{OTHER_KEY}",
                                  DISPATCHER_ADMIN_KEYS=ADMIN_KEY, BOT_CHANNEL_TOKEN=TOKEN, RESERVE_MAX_IDLE="0",
                                  WEBHOOK_URL=f"http://127.0.0.1:{port}/hooks", WEBHOOK_SECRET=SECRET)
                replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}", env)))
            yield replicas, out
    finally:
        terminate(receiver)


def cli(replica: DispatcherProcess, *args: str) -> str:
    result = CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                                env={"VOICEFLEET_URL": replica.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    return result.output


def start(replica: DispatcherProcess, key: str) -> httpx.Response:
    return httpx.post(replica.base_url + "/start", json={"body": {}}, timeout=TIMEOUT,
                      headers={"Authorization": f"Bearer {key}"})


def first_answer(replica: DispatcherProcess, key: str, status: int, began: float) -> tuple[float, dict[str, Any]]:
    """Starts at `replica` until one is answered `status`: how long after `began` it came, and its body."""
    def answered() -> tuple[float, dict[str, Any]] | None:
        answer = start(replica, key)
        return (time.monotonic() - began, answer.json()) if answer.status_code == status else None

    return wait_until(answered, f"a start answered {status}", timeout=30, interval=0.05, detail=replica.log)


def deliveries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []


def test_a_budget_set_at_one_replica_refuses_the_next_start_at_the_other_and_lifting_it_admits(
        hooked: tuple[list[DispatcherProcess], Path]) -> None:
    (here, there), _out = hooked
    first = time.monotonic()
    assert start(there, TEAM_KEY).status_code == 201
    output = cli(here, "keys", "limit", "team", "--minutes-day", "0")
    took, refused = first_answer(there, TEAM_KEY, 429, time.monotonic())
    assert took <= PROPAGATION_SECONDS, took
    error = refused["error"]
    assert error["code"] == "over_budget" and error["budget"] == "minutes-day" and error["limit"] == 0
    # The first session, still running, counts what it ran so far, in the first refusal already.
    assert 0 < error["used"] <= (time.monotonic() - first) / 60, error
    assert f"{error['used']:g} of 0 minutes used" in error["message"] and error["resets_at"]
    assert "budget.team.minutes-day" in output
    cli(here, "keys", "limit", "team", "--minutes-day", "none")
    took, _admitted = first_answer(there, TEAM_KEY, 201, time.monotonic())
    assert took <= PROPAGATION_SECONDS, took
    audit = json.loads(cli(there, "audit", "--runtime", "--json"))
    lines = [(line["name"], line["old"], line["new"]) for line in audit["lines"]]
    assert lines[:2] == [("budget.team.minutes-day", 0, None), ("budget.team.minutes-day", None, 0)]


def test_sessions_at_both_replicas_count_and_the_80_and_100_percent_webhooks_arrive_once_each(
        hooked: tuple[list[DispatcherProcess], Path]) -> None:
    replicas, out = hooked
    cli(replicas[0], "keys", "limit", "other", "--sessions", "5")
    wait_until(lambda: start(replicas[1], OTHER_KEY).status_code == 201, "the budget's first start at the other",
               timeout=30, detail=replicas[1].log)
    for n in range(3):  # 4 of 5 open, at both replicas
        answer = start(replicas[n % 2], OTHER_KEY)
        assert answer.status_code == 201, answer.text
    wait_until(lambda: any(d.get("type") == "key.budget.warning" for d in deliveries(out)), "the 80 % webhook",
               timeout=30, detail=lambda: "\n".join(r.log() for r in replicas))
    assert start(replicas[0], OTHER_KEY).status_code == 201  # the fifth
    wait_until(lambda: any(d.get("type") == "key.budget.reached" for d in deliveries(out)), "the 100 % webhook",
               timeout=30, detail=lambda: "\n".join(r.log() for r in replicas))
    # Each replica's reading now holds all five: the sixth is refused at either.
    refused = wait_until(lambda: (a := start(replicas[1], OTHER_KEY)).status_code == 429 and a, "a sixth refused",
                         timeout=30)
    assert "of 5 sessions at once used" in refused.json()["error"]["message"]
    time.sleep(3)  # both replicas read the usage three more times: nothing more is pushed
    received = [d for d in deliveries(out) if str(d.get("type", "")).startswith("key.budget")
                and d["data"]["key"] == "other"]
    assert not [d for d in deliveries(out) if "invalid" in d]
    assert Counter(d["type"] for d in received) == {"key.budget.warning": 1, "key.budget.reached": 1}, received
    warning = next(d for d in received if d["type"] == "key.budget.warning")["data"]
    assert (warning["key"], warning["budget"], warning["limit"], warning["percent"]) == ("other", "sessions", 5, 80)
