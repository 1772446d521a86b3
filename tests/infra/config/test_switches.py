"""The dispatcher's feature switches a stack turns on (stacks/config/switches.py): a deployed bot whose job
is to dial out gets its start through the stack's own settings; and no documented switch of the
dispatcher's that matters in the cloud lacks a stack key, save the exceptions named here, each with
its reason."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from stacks.config.dispatcher_keys import ENTRIES
from stacks.config.switches import SWITCHES
from stacks.tools.config_check import stack_envs
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.support.processes import run_dispatcher
from voicefleet_settings.model import BOOLEAN, ENUM
from voicefleet_settings.names import by_name

ROOT = Path(__file__).resolve().parents[3]
KEY = "switch-test-key-0123456789"

# Sections of settings no stack's dispatcher reads: bots' own, the CLI's, and the backends no stack deploys.
NOT_THE_CLOUD_DISPATCHERS = ("bot", "cli", "local", "fly", "modal", "cerebrium")
# Switches deliberately without a stack key, each with its reason.
EXCEPTIONS = {
    "RELEASE_AUTO_ROLLBACK": "on by default, which a deployed fleet wants: a breaching canary rolls back by itself",
    "RESERVE_FORECAST": "on by default: the reserve keys' recommended values were measured with the forecast "
                        "(docs/reserve.md)",
    "LOG_LEVEL": "the deployed dispatcher logs at its default, info, which its log-based alarms read; "
                 "debug is for a run on a workstation",
    "BOT_GPU": "the stacks run bots without a GPU: no GPU machine family, quota or driver is part of them",
}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _named_by_the_stacks() -> set[str]:
    """Settings the stack program writes from its own resources (`ECS_CLUSTER`), named in its code."""
    found: set[str] = set()
    for path in (ROOT / "stacks").rglob("*.py"):
        found |= set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"', path.read_text()))
    return found


def test_every_switch_of_the_cloud_dispatcher_has_a_stack_key_or_a_reason() -> None:
    keyed = {entry.setting for entry in ENTRIES} | _named_by_the_stacks()
    switches = [setting.name for setting in by_name().values()
                if setting.kind in (BOOLEAN, ENUM) and not setting.section.startswith(NOT_THE_CLOUD_DISPATCHERS)]
    assert sorted(name for name in switches if name not in keyed and name not in EXCEPTIONS) == []
    assert sorted(name for name in EXCEPTIONS if name in keyed) == []  # an exception that got a key is none


def test_every_switch_is_declared_in_the_project_file() -> None:
    project = (ROOT / "Pulumi.yaml").read_text()
    assert [key for key in SWITCHES if f"\n  {key}:\n    type: boolean\n" not in project] == []


def test_a_dial_out_start_goes_through_with_the_stacks_own_settings(tmp_path: Path) -> None:
    """`dailyAllowDialout: true` in aws-dev gives its dispatcher the setting that lets a start ask Daily
    for `enable_dialout`: a dispatcher run with what the stack gives it answers that start, not 422."""
    (env,) = stack_envs("aws-dev", {"dailyAllowDialout": "true"}, cached=False)
    (off,) = stack_envs("aws-dev", cached=False)
    assert "DAILY_ALLOW_DIALOUT" not in off.plain  # the dispatcher's own default (off) holds
    with serve(FakeDaily(), "/v1") as daily:
        run_env = {**daily.env, "DISPATCHER_API_KEYS": KEY, "TRANSPORTS": "daily", "RESERVE_MIN_IDLE": "0",
                   "RESERVE_MAX_IDLE": "0", "DAILY_ALLOW_DIALOUT": env.plain["DAILY_ALLOW_DIALOUT"]}
        with run_dispatcher(tmp_path, run_env) as running:
            answer = httpx.post(f"{running.base_url}/start", headers={"Authorization": f"Bearer {KEY}"},
                                timeout=30, json={"createDailyRoom": True,
                                                  "dailyRoomProperties": {"enable_dialout": True}})
        assert answer.status_code < 300, answer.text
        (room,) = daily.rooms.values()
        assert room["config"]["enable_dialout"] is True
