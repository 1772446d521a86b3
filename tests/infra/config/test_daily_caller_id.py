"""The number a Daily warm transfer's person sees, on a stack (`dailyDialoutCallerId`, stacks/config/phone.py): the
dispatcher reads it as a plain setting and no bot gets it; a value the dispatcher would refuse at start (a number
in place of its id) fails the preview with the same way out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stacks.config.model import Settings
from stacks.config.reader import SettingsError
from stacks.tools.dispatcher_env import dispatcher_envs
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.helpers import holding

CALLER_ID = "34b0eb2b-4f6d-41e2-8189-c836e830ffbb"


def test_the_dispatcher_gets_the_caller_id_and_no_bot_does(stack: StackRunner) -> None:
    run = stack("aws", dailyDialoutCallerId=CALLER_ID)
    (env,) = dispatcher_envs(run.registrations)
    assert env.plain.get("DAILY_DIALOUT_CALLER_ID") == CALLER_ID
    assert {r.name for r in holding(run, CALLER_ID)} == {env.resource}


def test_without_the_key_daily_picks_the_number(stack_settings: Callable[..., Settings]) -> None:
    assert "DAILY_DIALOUT_CALLER_ID" not in stack_settings("aws").phone


@pytest.mark.parametrize(("value", "said"), [
    ("+14155550199", r"'\+14155550199' is a phone number"),
    ("PN0123", "'PN0123' is not a UUID"),
], ids=["a_number", "not_a_uuid"])
def test_a_caller_id_the_dispatcher_would_refuse_fails_the_preview(
        stack_settings: Callable[..., Settings], value: str, said: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:dailyDialoutCallerId {said}: .*`GET /purchased-phone-numbers`"
                                            " lists, not the number itself"):
        stack_settings("aws", dailyDialoutCallerId=value)


def test_the_caller_id_set_as_a_secret_is_refused_rather_than_written_plain(
        stack_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match="voicefleet:dailyDialoutCallerId is set as a secret"):
        stack_settings("aws", secrets={**SECRETS, "voicefleet:dailyDialoutCallerId": CALLER_ID})
