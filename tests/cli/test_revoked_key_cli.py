"""A key revoked at runtime, against a real `python -m dispatcher`, through the `voicefleet` CLI: its
holder is told the key was revoked and to ask for a live one, never to set DISPATCHER_API_KEYS; a
guess at its secret and a random key are told exactly what any wrong key is told (nothing about which
keys exist); a secret this dispatcher never checked before its revocation is told it was revoked too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ADMIN_KEY = "vf-admin-revoked-4c8e1a2b93"
TEAM_KEY = "team-revoked-key-0d5f7a9c31"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
REVOKED = ["voicefleet: api_key_revoked (HTTP 401): this API key was revoked: it opens nothing here any more; ask "
           "the deployment's admin for a live key (`voicefleet keys list` shows them, `voicefleet keys create` "
           "makes one)",
           "VOICEFLEET_API_KEY holds a revoked key: set it to a live one, which the deployment's admin gives "
           "(`voicefleet keys create NAME --another` for the same name)"]


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"DISPATCHER_API_KEYS": f"team:{TEAM_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def sessions(dispatcher: DispatcherProcess, key: str) -> Result:
    return CliRunner().invoke(voicefleet, ["sessions"], prog_name="voicefleet",
                              env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_API_KEY": key})


def status(dispatcher: DispatcherProcess, key: str) -> int:
    return httpx.get(f"{dispatcher.base_url}/sessions", timeout=30,
                     headers={"Authorization": f"Bearer {key}"}).status_code


def made(dispatcher: DispatcherProcess, name: str) -> dict[str, str]:
    answer = httpx.post(f"{dispatcher.base_url}/keys", json={"name": name}, headers=ADMIN, timeout=30)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def revoke(dispatcher: DispatcherProcess, name: str, key: str) -> None:
    assert httpx.delete(f"{dispatcher.base_url}/keys/{name}", headers=ADMIN, timeout=30).status_code == 204
    wait_until(lambda: status(dispatcher, key) == 401, f"{name}'s key refused", timeout=10)


def test_a_runtime_key_used_then_revoked_is_told_it_was_revoked(dispatcher: DispatcherProcess) -> None:
    key = made(dispatcher, "acme")
    assert sessions(dispatcher, key["secret"]).exit_code == 0  # checked here while it was live
    revoke(dispatcher, "acme", key["secret"])
    result = sessions(dispatcher, key["secret"])
    assert result.exit_code == 1 and result.stderr.splitlines() == REVOKED
    assert "DISPATCHER_API_KEYS" not in result.stderr
    # A guess at its secret (its id is not secret) is told what any wrong runtime secret is told.
    guess = sessions(dispatcher, f"vf_{key['secret_id']}_{'A' * 43}")
    never = sessions(dispatcher, f"vf_{'0' * 12}_{'A' * 43}")
    assert guess.stderr == never.stderr and "revoked:" not in guess.stderr and "api_key_revoked" not in guess.stderr


def test_a_settings_key_revoked_at_runtime_is_told_it_was_revoked(dispatcher: DispatcherProcess) -> None:
    revoke(dispatcher, "team", TEAM_KEY)
    result = sessions(dispatcher, TEAM_KEY)
    assert result.exit_code == 1 and result.stderr.splitlines() == REVOKED
    random = sessions(dispatcher, "team-revoked-key-0d5f7a9c32")  # one character off: any wrong key's answer
    assert random.stderr.splitlines()[0] == "voicefleet: unauthorized (HTTP 401): invalid API key"


def test_a_revoked_secret_this_dispatcher_never_checked_is_told_it_was_revoked(dispatcher: DispatcherProcess) -> None:
    key = made(dispatcher, "beta")
    revoke(dispatcher, "beta", key["secret"])  # its first use: after its revocation
    result = sessions(dispatcher, key["secret"])  # checked against the revoked record's slow hash
    assert result.exit_code == 1 and result.stderr.splitlines() == REVOKED
    guess = sessions(dispatcher, f"vf_{key['secret_id']}_{'A' * 43}")
    assert "api_key_revoked" not in guess.stderr
