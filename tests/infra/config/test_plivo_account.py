"""The Plivo account on a stack (stacks/config/plivo_account.py): every cloud's dispatcher reads its Auth ID
as a plain setting beside the token it reads by reference, so a deployed dispatcher can transfer Plivo
calls; an Auth ID the dispatcher would refuse, or one without its token, fails the preview."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.dispatcher_env import dispatcher_envs
from tests.infra.conftest import K8S_STACK_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import holding

AUTH_ID = "MAODU1MTA5ZTQ3MDQ4NT"
TOKEN = {"voicefleet:plivoAuthToken": "SENTINEL-plivo-token-4d1c"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_every_clouds_dispatcher_gets_the_plivo_account_and_no_bot_does(stack: StackRunner, cloud: str) -> None:
    run = stack(cloud, secrets={**(K8S_STACK_SECRETS if cloud == "k8s" else SECRETS), **TOKEN}, plivoAuthId=AUTH_ID)
    (env,) = dispatcher_envs(run.registrations)
    assert env.plain.get("PLIVO_AUTH_ID") == AUTH_ID
    assert "PLIVO_AUTH_TOKEN" in env.masked
    assert {r.name for r in holding(run, AUTH_ID)} == {env.resource}


def test_without_the_key_no_plivo_account_is_set(stack: StackRunner) -> None:
    (env,) = dispatcher_envs(stack("aws", secrets={**SECRETS, **TOKEN}).registrations)
    assert "PLIVO_AUTH_ID" not in env.plain


@pytest.mark.parametrize(("value", "secrets", "said"), [
    ("MA-0001", TOKEN, "voicefleet:plivoAuthId must be the Auth ID the Plivo console shows"),
    ("ＭＡ１２３ä", TOKEN, "voicefleet:plivoAuthId must be the Auth ID the Plivo console shows"),
    (AUTH_ID, {}, "voicefleet:plivoAuthId needs plivoAuthToken.*pulumi config set --secret plivoAuthToken"),
], ids=["not_letters_and_digits", "not_ascii", "without_its_token"])
def test_a_plivo_account_the_dispatcher_could_not_use_fails_the_preview(
        stack: StackRunner, value: str, secrets: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        stack("aws", secrets={**SECRETS, **secrets}, plivoAuthId=value)


def test_the_auth_id_set_as_a_secret_is_refused_rather_than_written_plain(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:plivoAuthId is set as a secret.*pulumi config set plivoAuthId"):
        stack("aws", secrets={**SECRETS, **TOKEN, "voicefleet:plivoAuthId": AUTH_ID})
