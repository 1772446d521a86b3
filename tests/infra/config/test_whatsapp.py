"""WhatsApp calls and calls placed through Twilio on a stack (stacks/config/whatsapp.py, calling_out.py):
every cloud's dispatcher reads WhatsApp's secrets by reference from its secret store and the numbers,
Twilio's pace and the public URL as plain settings; no bot gets any of them; what the dispatcher would
refuse at start-up fails the preview, with the key and the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.config_check import stack_envs
from stacks.tools.dispatcher_env import dispatcher_envs
from tests.images.test_bot_project import project
from tests.infra.conftest import K8S_STACK_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import holding

TOKEN, APP_SECRET, VERIFY = "SENTINEL-wa-token-5a1e", "SENTINEL-wa-app-secret-7c2d", "SENTINEL-wa-verify-9b3f"
WHATSAPP = {"voicefleet:whatsappAccessToken": TOKEN, "voicefleet:whatsappAppSecret": APP_SECRET,
            "voicefleet:whatsappVerifyToken": VERIFY}
NUMBERS = '{"106540352242922": "support@stable", "106540352242923": "sales"}'
ACCOUNT = "AC" + "0123456789abcdef" * 2
PLAIN = {"whatsappNumbers": NUMBERS, "twilioCallsPerSecond": "2.5", "twilioCallMaxWaitSeconds": "0",
         "phonePublicUrl": "https://calls.example.com/", "twilioAccountSid": ACCOUNT, "twilioVoicemail": "message"}
TWILIO = {"voicefleet:twilioAuthToken": "SENTINEL-twilio-auth-3e8a"}
# Where each cloud's dispatcher reads its secrets from: the only resource a secret's value may be in.
STORE = {"aws": "aws:secretsmanager/secretVersion:SecretVersion",
         "gcp": "gcp:secretmanager/secretVersion:SecretVersion", "azure": "azure-native:keyvault:Secret",
         "k8s": "kubernetes:core/v1:Secret"}


def _secrets(cloud: str) -> dict[str, str]:
    return {**(K8S_STACK_SECRETS if cloud == "k8s" else SECRETS), **WHATSAPP}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_every_clouds_dispatcher_and_no_bot_gets_whatsapp_and_twilio_calls_settings(stack: StackRunner,
                                                                                     cloud: str) -> None:
    run = stack(cloud, secrets={**_secrets(cloud), **TWILIO}, **PLAIN)
    (env,) = dispatcher_envs(run.registrations)
    assert {name: env.plain.get(name) for name in ("WHATSAPP_NUMBERS", "TWILIO_CALLS_PER_SECOND",
                                                   "TWILIO_CALL_MAX_WAIT_SECONDS", "PHONE_PUBLIC_URL",
                                                   "TWILIO_ACCOUNT_SID", "TWILIO_VOICEMAIL")} == {
        "WHATSAPP_NUMBERS": "106540352242922=support@stable,106540352242923=sales",
        "TWILIO_CALLS_PER_SECOND": "2.5", "TWILIO_CALL_MAX_WAIT_SECONDS": "0",
        "PHONE_PUBLIC_URL": "https://calls.example.com", "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_VOICEMAIL": "message"}
    assert {"WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"} <= env.masked
    for value in (TOKEN, APP_SECRET, VERIFY):
        assert {r.type for r in holding(run, value)} == {STORE[cloud]}
    # Named only by the dispatcher's own resources (its container, on k8s its Secret): no bot's.
    assert {r.name for r in holding(run, "WHATSAPP_")} == {env.resource}


def test_without_the_keys_the_dispatcher_keeps_its_own_defaults(stack: StackRunner) -> None:
    (env,) = dispatcher_envs(stack("aws").registrations)
    assert not {name for name in (*env.plain, *env.masked) if name.startswith(("WHATSAPP_", "TWILIO_", "PHONE_"))}


@pytest.mark.parametrize("left_out", [*WHATSAPP, "whatsappNumbers"])
def test_a_whatsapp_key_without_the_others_is_refused_naming_the_missing_and_the_fix(
        stack: StackRunner, left_out: str) -> None:
    short = left_out.removeprefix("voicefleet:")
    fix = (r"pulumi config set --path 'whatsappNumbers\.PHONE_NUMBER_ID'" if short == "whatsappNumbers"
           else f"pulumi config set --secret {short}")
    secrets = {key: value for key, value in _secrets("aws").items() if key != left_out}
    plain = {"whatsappNumbers": NUMBERS} if short != "whatsappNumbers" else {}
    with pytest.raises(SettingsError, match=f"voicefleet:{short} must be set with .*{fix}"):
        stack("aws", secrets=secrets, **plain)


def test_numbers_the_dispatcher_would_refuse_fail_the_preview_with_the_key_named(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:whatsappNumbers is refused .*names no API key"):
        stack("aws", secrets=_secrets("aws"), whatsappNumbers="106540352242922")  # a stack always has keys
    with pytest.raises(SettingsError, match="voicefleet:whatsappNumbers is refused .*not a phone number ID"):
        stack("aws", secrets=_secrets("aws"), whatsappNumbers="+14155550100=support")
    stack("aws", secrets=_secrets("aws"), whatsappNumbers="106540352242922=support@stable")  # the text form


def test_a_bots_secret_of_a_whatsapp_name_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="botSecrets.*WHATSAPP_ACCESS_TOKEN"):
        stack("aws", secrets={**_secrets("aws"), "voicefleet:botSecrets": '{"WHATSAPP_ACCESS_TOKEN": "x"}'},
              whatsappNumbers=NUMBERS)


def test_whatsapp_calls_need_no_websocket_extra_in_the_bot(stack: StackRunner, tmp_path: Path) -> None:
    """A WhatsApp call reaches its bot over WebRTC, not a carrier's WebSocket: no FastAPI is asked for."""
    stack("aws", secrets=_secrets("aws"), whatsappNumbers=NUMBERS, botProject=str(project(tmp_path)))


@pytest.mark.parametrize(("key", "value", "said"), [
    ("twilioCallsPerSecond", "0", "voicefleet:twilioCallsPerSecond=0 must be "),
    ("twilioCallMaxWaitSeconds", "-1", "voicefleet:twilioCallMaxWaitSeconds=.*must be at least 0"),
    ("twilioCallsPerSecond", "fast", "voicefleet:twilioCallsPerSecond=.*is not a number"),
    ("phonePublicUrl", "http://calls.example.com", "voicefleet:phonePublicUrl must be https://HOST"),
    ("phonePublicUrl", "https://calls.example.com/phone", "voicefleet:phonePublicUrl must be https://HOST"),
    ("twilioVoicemail", "beep", "voicefleet:twilioVoicemail must be one of , hang_up, message, flag"),
    ("twilioAccountSid", "AC123", "voicefleet:twilioAccountSid must be the Twilio account's SID"),
    ("twilioAccountSid", ACCOUNT, "voicefleet:twilioAccountSid needs twilioAuthToken.*--secret twilioAuthToken"),
])
def test_twilio_calls_settings_the_dispatcher_would_refuse_fail_the_preview(
        stack: StackRunner, key: str, value: str, said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        stack("aws", **{key: value})


def test_config_check_of_a_stack_names_the_missing_whatsapp_keys() -> None:
    """What `voicefleet config check --stack` runs: the stack file, the change, the program under mocks."""
    with pytest.raises(SettingsError, match="whatsappAccessToken must be set with whatsappNumbers.*"
                                            "whatsappAccessToken, whatsappAppSecret, whatsappVerifyToken missing"):
        stack_envs("aws-dev", {"whatsappNumbers": "106540352242922=support"}, cached=False)


@pytest.mark.parametrize("key", ["whatsappNumbers", "twilioAccountSid", "phonePublicUrl"])
def test_a_plain_key_set_as_a_secret_is_refused_rather_than_decrypted_into_the_plain_environment(
        stack: StackRunner, key: str) -> None:
    secrets = {**_secrets("aws"), **TWILIO, f"voicefleet:{key}": PLAIN[key]}
    plain = {name: value for name, value in PLAIN.items() if name != key}
    with pytest.raises(SettingsError, match=f"voicefleet:{key} is set as a secret.*set it without --secret: "
                                            f"pulumi config set {key}"):
        stack("aws", secrets=secrets, **plain)
