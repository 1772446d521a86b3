"""`voicefleet keys list` shows each secret's own last use, not its name's: a rotation's old secret
reads `-` while only the new one is used, so an operator sees the clients have moved before revoking
it. A real `python -m dispatcher` with an admin key; the uses are written within about a second."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ADMIN_KEY = "vf-admin-last-use-2b7e9c0d14"
SETTINGS_KEY = "vf-settings-last-use-8c1f0a3e65"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"DISPATCHER_API_KEYS": f"team:{SETTINGS_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0",
           "BOT_CHANNEL_TOKEN": "keys-last-use-deployment-secret-012345"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def cli(dispatcher: DispatcherProcess, *args: str) -> dict:
    result = CliRunner().invoke(voicefleet, [*args, "--json"], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_each_secret_shows_its_own_last_use(dispatcher: DispatcherProcess) -> None:
    old = cli(dispatcher, "keys", "create", "acme")
    new = cli(dispatcher, "keys", "create", "acme", "--another")
    for _ in range(3):  # only the new secret is used
        answer = httpx.get(f"{dispatcher.base_url}/sessions", timeout=30,
                           headers={"Authorization": f"Bearer {new['secret']}"})
        assert answer.status_code == 200, answer.text

    def rows() -> dict[str, dict] | None:
        found = {row["secret_id"]: row for row in cli(dispatcher, "keys", "list")["keys"] if row["name"] == "acme"}
        return found if found.get(new["secret_id"], {}).get("last_used") else None

    found = wait_until(rows, "the new secret's use in `keys list`", timeout=30, interval=0.2, detail=dispatcher.log)
    assert found[old["secret_id"]]["last_used"] is None  # never used: its clients have all moved
    assert found[new["secret_id"]]["last_used"] > 0
