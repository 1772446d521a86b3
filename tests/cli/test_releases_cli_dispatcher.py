"""`voicefleet releases` against a real `python -m dispatcher` with two local releases: the command
and the dispatcher's admin routes agree on every shape, end to end (list, set, rollback, history,
and a client key refused with the way forward)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "vf-admin-e2e-7c41d0a9b35f"
CLIENT_KEY = "vf-client-e2e-2b8e6f1c04d7"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    bot = ROOT / "examples" / "parrot" / "bot.py"
    # RELEASE_WEIGHTS names `next`, so it may take traffic without a smoke session (docs/releases.md).
    env = {"BOT_RELEASES": f"stable={bot},next={bot}", "RELEASE_WEIGHTS": "stable=100,next=0",
           "DISPATCHER_API_KEYS": CLIENT_KEY,
           "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def run(dispatcher: DispatcherProcess, *args: str, key: str = ADMIN_KEY, variable: str = "VOICEFLEET_ADMIN_KEY"
        ) -> Result:
    result = CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                                env={"VOICEFLEET_URL": dispatcher.base_url, variable: key})
    assert key not in result.output
    return result


def weights(result: Result) -> dict[str, int]:
    assert result.exit_code == 0, result.output
    return {row.split()[0]: int(row.split()[1].rstrip("%")) for row in result.stdout.splitlines()[1:]}


def test_list_set_rollback_and_history_against_the_dispatcher(dispatcher: DispatcherProcess) -> None:
    listed = run(dispatcher, "releases")
    assert listed.stdout.splitlines()[0].split() == ["NAME", "WEIGHT", "STABLE", "LIVE", "IDLE", "SMOKE",
                                                     "EVAL", "HEALTH"]
    assert weights(listed) == {"stable": 100, "next": 0}
    assert weights(run(dispatcher, "releases", "set", "next", "10")) == {"stable": 90, "next": 10}
    assert json.loads(run(dispatcher, "releases", "--json").stdout)["stable"] == "stable"
    assert weights(run(dispatcher, "releases", "rollback")) == {"stable": 100, "next": 0}
    again = run(dispatcher, "releases", "rollback")
    assert again.exit_code == 1
    assert again.stderr.startswith("voicefleet: nothing_to_roll_back (HTTP 409)")
    changes = json.loads(run(dispatcher, "releases", "history", "--json").stdout)["changes"]
    assert [(c["from"], c["to"]) for c in changes[:2]] == [({"stable": 90, "next": 10}, {"stable": 100, "next": 0}),
                                                          ({"stable": 100, "next": 0}, {"stable": 90, "next": 10})]


def test_a_client_key_is_refused_and_told_which_key_to_use(dispatcher: DispatcherProcess) -> None:
    refused = run(dispatcher, "releases", "set", "next", "50", key=CLIENT_KEY)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "voicefleet: admin_key_required (HTTP 403): a client API key cannot change releases: use one of "
        "DISPATCHER_ADMIN_KEYS",
        "VOICEFLEET_ADMIN_KEY holds a client API key: set it to one of the dispatcher's DISPATCHER_ADMIN_KEYS",
    ]
    assert weights(run(dispatcher, "releases")) == {"stable": 100, "next": 0}


def test_a_rollback_right_after_a_promote_returns_to_the_release_stable_before_and_says_so(
        dispatcher: DispatcherProcess) -> None:
    assert weights(run(dispatcher, "releases", "promote", "next")) == {"stable": 0, "next": 100}
    back = run(dispatcher, "releases", "rollback")
    assert weights(back) == {"stable": 100, "next": 0}
    assert back.stderr.startswith("rolled back from next to stable, the stable release before next was promoted (by ")
    assert json.loads(run(dispatcher, "releases", "--json").stdout)["stable"] == "stable"
    assert run(dispatcher, "releases", "rollback").exit_code == 1  # once: never forward again
    header, latest, *_ = run(dispatcher, "releases", "history").stdout.splitlines()
    assert header.split() == ["WHEN", "REGION", "BY", "FROM", "TO", "REASON"]
    assert "stable=0,next=100" in latest and "stable=100,next=0" in latest


def test_a_client_key_lists_the_releases_and_their_traffic_not_the_load(dispatcher: DispatcherProcess) -> None:
    listed = run(dispatcher, "releases", key=CLIENT_KEY, variable="VOICEFLEET_API_KEY")
    assert weights(listed) == {"stable": 100, "next": 0}
    body = json.loads(run(dispatcher, "releases", "--json", key=CLIENT_KEY, variable="VOICEFLEET_API_KEY").stdout)
    assert set(body) == {"stable", "changed_at", "releases"}
    assert {field for release in body["releases"] for field in release} == {
        "name", "weight", "stable", "created", "health", "smoke", "eval"}  # eval: its counts, no session ids
    stranger = run(dispatcher, "releases", key="vf-not-a-key-0000000000", variable="VOICEFLEET_API_KEY")
    assert stranger.exit_code == 1 and "401" in stranger.stderr


def test_every_weight_is_set_in_one_change(dispatcher: DispatcherProcess) -> None:
    before = json.loads(run(dispatcher, "releases", "history", "--json").stdout)["changes"]
    listed = run(dispatcher, "releases", "set", "stable=70", "next=30%")
    assert weights(listed) == {"stable": 70, "next": 30}
    shown = json.loads(run(dispatcher, "releases", "--json").stdout)["releases"]
    smoked = {release["name"]: release["smoke"]["status"] for release in shown}
    header, *rows = listed.stdout.splitlines()
    column = header.index("SMOKE")  # STABLE is blank but for one row: read the column where it stands
    assert {row.split()[0]: row[column:].split()[0] for row in rows} == smoked
    after = json.loads(run(dispatcher, "releases", "history", "--json").stdout)["changes"]
    assert len(after) == len(before) + 1 and after[0]["to"] == {"stable": 70, "next": 30}  # one change, not two
    assert weights(run(dispatcher, "releases", "set", "stable=100")) == {"stable": 100, "next": 0}
    refused = run(dispatcher, "releases", "set", "stable=60", "next=30")
    assert refused.exit_code == 1 and "100" in refused.stderr
    for args in (("next=10", "next=20"), ("next", "10", "stable=90"), ("=10",)):
        wrong = run(dispatcher, "releases", "set", *args)
        assert wrong.exit_code == 2 and "NAME=WEIGHT" in wrong.stderr, wrong.stderr
    assert weights(run(dispatcher, "releases")) == {"stable": 100, "next": 0}

