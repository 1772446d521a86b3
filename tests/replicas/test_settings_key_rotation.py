"""A key of DISPATCHER_API_KEYS rotated and revoked at runtime, as a runtime key is: two real
`python -m dispatcher` replicas on one redis-server, through the `voicefleet` CLI. A second secret
for the settings key's name (`keys create team --another`) reads the name's sessions; the settings
key, listed with its own secret id, is revoked by it (`keys revoke --secret-id`) at one replica and
refused at the other, with no restart, while the new secret and the name's sessions go on; the
revocation is on the audit trail and outlives a replica started after it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.replicas.conftest import TIMEOUT
from tests.replicas.test_runtime_settings import ADMIN_KEY, TEAM_KEY, Pair, env_of, shared  # noqa: F401 (the fixture)
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # two real dispatchers and a redis-server

OLD_KEY = TEAM_KEY  # the settings key `team:` of both replicas


def cli(replica: DispatcherProcess, *args: str, as_json: bool = True) -> dict:
    result = CliRunner().invoke(voicefleet, [*args, *(["--json"] if as_json else [])], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": replica.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)) if as_json else {}


def read(replica: DispatcherProcess, key: str, session_id: str) -> int:
    return httpx.get(f"{replica.base_url}/sessions/{session_id}", timeout=TIMEOUT,
                     headers={"Authorization": f"Bearer {key}"}).status_code


def test_a_settings_key_is_rotated_and_revoked_at_runtime_at_every_replica(
        shared: Pair, tmp_path: Path) -> None:  # noqa: F811
    (here, there), store = shared.replicas, shared.store
    started = httpx.post(f"{here.base_url}/start", json={"body": {}}, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {OLD_KEY}"})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    new = cli(here, "keys", "create", "team", "--another")
    wait_until(lambda: read(there, new["secret"], session_id) == 200, "the new secret reading the name's session",
               timeout=30, detail=there.log)
    settings_rows = [r for r in cli(there, "keys", "list")["keys"] if r["source"] == "settings"]
    assert [r["name"] for r in settings_rows] == ["team"] and settings_rows[0]["secret_id"]
    old_id = settings_rows[0]["secret_id"]
    cli(here, "keys", "revoke", "--secret-id", old_id, as_json=False)
    wait_until(lambda: read(there, OLD_KEY, session_id) == 401, "the settings key refused at the other replica",
               timeout=30, interval=0.1, detail=there.log)
    assert read(there, new["secret"], session_id) == 200  # the name's sessions go on with its new secret
    assert read(here, OLD_KEY, session_id) == 401
    assert old_id not in [r["secret_id"] for r in cli(there, "keys", "list")["keys"]]
    lines = cli(there, "audit", "--runtime")["lines"]
    assert {"action": "key.revoke", "name": "team", "secret_id": old_id, "source": "settings"}.items() <= \
        next(line for line in lines if line.get("secret_id") == old_id).items()
    (tmp_path / "r2").mkdir()
    with run_dispatcher(tmp_path / "r2", env_of(store, tmp_path, "r-2")) as later:  # the settings still hold it
        assert read(later, OLD_KEY, session_id) == 401
        assert read(later, new["secret"], session_id) == 200
