"""Who may call out through Twilio and Telnyx on a stack (stacks/config/call_callers.py, calling_out.py,
calling_out_telnyx.py): the lists twilioCallers, twilioDestinations and twilioCallerIds (and Telnyx's)
reach every cloud's dispatcher as the settings its own parser reads back, Telnyx's account and API key
with them; what it would refuse, or a caller no key of dispatcherApiKeys is named, fails the preview
with the key and the fix named, never showing a key."""

from __future__ import annotations

import json
import re

import pytest

from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.twilio_dial import dial_settings_from_env
from stacks.tools.config_check import stack_envs
from stacks.tools.dispatcher_env import dispatcher_envs
from tests.infra.config.test_settings import error
from tests.infra.conftest import K8S_STACK_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import holding

NAMED_KEYS = {"voicefleet:dispatcherApiKeys": "renewals-bot:SENTINEL-key-7f1a,support-bot:SENTINEL-key-2c9d,"
                                              "SENTINEL-unnamed-key-4b0e"}
POLICY = {"twilioCallers": json.dumps(["renewals-bot", "support-bot"]),
          "twilioDestinations": json.dumps(["+1*", "+44*", "+1900*"]),
          "twilioCallerIds": json.dumps(["+14155550199"])}


def _secrets(cloud: str) -> dict[str, str]:
    return {**(K8S_STACK_SECRETS if cloud == "k8s" else SECRETS), **NAMED_KEYS}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_every_clouds_dispatcher_reads_the_policy_its_own_parser_takes(stack: StackRunner, cloud: str) -> None:
    (env,) = dispatcher_envs(stack(cloud, secrets=_secrets(cloud), **POLICY).registrations)
    assert {name: env.plain.get(name) for name in ("TWILIO_CALLERS", "TWILIO_DESTINATIONS", "TWILIO_CALLER_IDS")} == {
        "TWILIO_CALLERS": "renewals-bot,support-bot", "TWILIO_DESTINATIONS": "+1*,+44*,+1900*",
        "TWILIO_CALLER_IDS": "+14155550199"}
    read = dial_settings_from_env(env.plain, "TWILIO")
    assert (read.callers, read.destinations, read.caller_ids) == (
        ("renewals-bot", "support-bot"), ("+1*", "+44*", "+1900*"), ("+14155550199",))


def test_pulumi_yamls_empty_lists_leave_the_dispatchers_own_policy(stack: StackRunner) -> None:
    """`pulumi up` hands every unset key its declared default, `[]`: no key may call out, as unset."""
    (env,) = dispatcher_envs(stack("aws", **dict.fromkeys(POLICY, "[]")).registrations)
    assert not {name for name in env.plain if name.startswith("TWILIO_")}


@pytest.mark.parametrize(("key", "value", "said"), [
    ("twilioDestinations", ["1*"], r"voicefleet:twilioDestinations is refused as the dispatcher would refuse it: "
                                   r"voicefleet:twilioDestinations: '1\*' is not one of E.164 patterns"),
    ("twilioDestinations", ["+1*4"], r"voicefleet:twilioDestinations: '\+1\*4' is not one of E.164 patterns"),
    ("twilioCallerIds", ["4155550199"], r"voicefleet:twilioCallerIds: '4155550199' is not one of E.164 numbers"),
    ("twilioCallerIds", [14155550199], r"voicefleet:twilioCallerIds must be a list of strings.*quoted.*"
                                       r"pulumi config set --path 'twilioCallerIds\[0\]'"),
    ("twilioCallers", "support-bot", r"voicefleet:twilioCallers must be a list of strings"),
    ("twilioCallers", ["a,b"], r"voicefleet:twilioCallers must be a list of strings, each without ','"),
])
def test_a_policy_the_dispatcher_would_refuse_fails_the_preview_naming_the_key(
        stack: StackRunner, key: str, value: object, said: str) -> None:
    message = error(stack, "aws", secrets=_secrets("aws"), **{key: value if isinstance(value, str)
                                                               else json.dumps(value)})
    assert re.search(said, message), message


@pytest.mark.parametrize(("keys", "unknown", "names"), [
    (NAMED_KEYS["voicefleet:dispatcherApiKeys"], "'sales-bot'", "renewals-bot, support-bot"),
    ("SENTINEL-a,SENTINEL-b", "'support-bot', 'sales-bot'", "none"),  # unnamed keys have no name to list
])
def test_a_caller_no_key_is_named_is_refused_without_showing_a_key(stack: StackRunner, keys: str, unknown: str,
                                                                    names: str) -> None:
    message = error(stack, "gcp", secrets={**SECRETS, "voicefleet:dispatcherApiKeys": keys},
                    twilioCallers=json.dumps(["support-bot", "sales-bot"]))
    assert (f"voicefleet:twilioCallers names {unknown}, which is no key's name in voicefleet:dispatcherApiKeys "
            f"(its names: {names})") in message, message
    assert "pulumi config set --secret dispatcherApiKeys" in message
    assert "SENTINEL" not in message


def test_the_offline_check_of_a_stack_file_leaves_the_callers_to_pulumi_up() -> None:
    """`voicefleet config check --stack` sees dispatcherApiKeys' ciphertext, never its names: the callers
    pass it, and `pulumi up`, which reads the keys, checks them."""
    (env,) = stack_envs("aws-dev", {"twilioCallers": '["support-bot"]'}, cached=False)
    assert env.plain["TWILIO_CALLERS"] == "support-bot"


TELNYX_ACCOUNT = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
TELNYX_SECRETS = {"voicefleet:telnyxTransferApiKey": "SENTINEL-telnyx-api-key-8d3e",
                  "voicefleet:telnyxPublicKey": "SENTINEL-telnyx-public-key-1f0c"}
TELNYX = {"telnyxAccountSid": TELNYX_ACCOUNT, "telnyxApplicationSid": "1293384261075731499",
          "telnyxCallsPerSecond": "4", "telnyxVoicemail": "flag", "telnyxCallers": json.dumps(["support-bot"]),
          "telnyxDestinations": json.dumps(["+49*"]), "telnyxCallerIds": json.dumps(["+4930901820"])}
STORE = {"aws": "aws:secretsmanager/secretVersion:SecretVersion", "k8s": "kubernetes:core/v1:Secret"}


@pytest.mark.parametrize("cloud", ["aws", "k8s"])
def test_a_stack_places_calls_through_telnyx_with_its_api_key_the_dispatchers_alone(stack: StackRunner,
                                                                                    cloud: str) -> None:
    run = stack(cloud, secrets={**_secrets(cloud), **TELNYX_SECRETS}, **TELNYX)
    (env,) = dispatcher_envs(run.registrations)
    assert {name: value for name, value in env.plain.items() if name.startswith("TELNYX_")} == {
        "TELNYX_ACCOUNT_SID": TELNYX_ACCOUNT, "TELNYX_APPLICATION_SID": "1293384261075731499",
        "TELNYX_CALLS_PER_SECOND": "4", "TELNYX_VOICEMAIL": "flag", "TELNYX_CALLERS": "support-bot",
        "TELNYX_DESTINATIONS": "+49*", "TELNYX_CALLER_IDS": "+4930901820"}
    read = dial_settings_from_env(env.plain, "TELNYX")
    assert (read.calls_per_second, read.callers, read.destinations) == (4.0, ("support-bot",), ("+49*",))
    assert {"TELNYX_TRANSFER_API_KEY", "TELNYX_PUBLIC_KEY"} <= env.masked
    assert {r.type for r in holding(run, "SENTINEL-telnyx-api-key-8d3e")} == {STORE[cloud]}
    assert {r.name for r in holding(run, "TELNYX_TRANSFER_API_KEY")} == {env.resource}  # no bot's


@pytest.mark.parametrize(("overrides", "secrets", "said"), [
    ({"telnyxAccountSid": TELNYX_ACCOUNT}, TELNYX_SECRETS,
     "voicefleet:telnyxApplicationSid is set together with telnyxAccountSid and telnyxApplicationSid"),
    ({"telnyxAccountSid": "AC0123", "telnyxApplicationSid": "1"}, TELNYX_SECRETS,
     "voicefleet:telnyxAccountSid must be the Telnyx account's id, a UUID"),
    ({"telnyxAccountSid": TELNYX_ACCOUNT, "telnyxApplicationSid": "1"}, {},
     "voicefleet:telnyxAccountSid needs telnyxTransferApiKey and telnyxPublicKey .*"
     "pulumi config set --secret telnyxTransferApiKey"),
    ({"telnyxCallsPerSecond": "0"}, {}, "voicefleet:telnyxCallsPerSecond=0 must be "),
    ({"telnyxVoicemail": "beep"}, {}, "voicefleet:telnyxVoicemail must be one of , hang_up, message, flag"),
    ({"telnyxCallerIds": '["+49 30"]'}, {}, r"voicefleet:telnyxCallerIds: '\+49 30' is not one of E.164 numbers"),
    ({"telnyxCallers": '["sales-bot"]'}, {}, "voicefleet:telnyxCallers names 'sales-bot', which is no key's name"),
])
def test_telnyx_calls_settings_the_dispatcher_would_refuse_fail_the_preview(
        stack: StackRunner, overrides: dict[str, str], secrets: dict[str, str], said: str) -> None:
    message = error(stack, "aws", secrets={**_secrets("aws"), **secrets}, **overrides)
    assert re.search(said, message), message
    assert "SENTINEL" not in message


TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2
API_KEY_SID = "SK" + "fedcba9876543210" * 2
TWILIO_KEY_SECRETS = {"voicefleet:twilioApiKeySecret": "SENTINEL-twilio-key-secret-6b1d",
                      "voicefleet:twilioAuthToken": "SENTINEL-twilio-auth-token-0e7c"}


TWILIO_KEY_STORE = {**STORE, "gcp": "gcp:secretmanager/secretVersion:SecretVersion",
                    "azure": "azure-native:keyvault:Secret"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_a_stack_talks_to_twilio_with_an_api_key_of_the_account_the_dispatchers_alone(stack: StackRunner,
                                                                                       cloud: str) -> None:
    """The key's SID is plain config, its secret by reference in the dispatcher's store and no bot's; the
    dispatcher's own parser reads them back as the credential its REST calls use."""
    run = stack(cloud, secrets={**_secrets(cloud), **TWILIO_KEY_SECRETS}, twilioAccountSid=TWILIO_ACCOUNT,
                twilioApiKeySid=API_KEY_SID, **POLICY)
    (env,) = dispatcher_envs(run.registrations)
    assert (env.plain["TWILIO_ACCOUNT_SID"], env.plain["TWILIO_API_KEY_SID"]) == (TWILIO_ACCOUNT, API_KEY_SID)
    assert {"TWILIO_API_KEY_SECRET", "TWILIO_AUTH_TOKEN"} <= env.masked
    assert {r.type for r in holding(run, "SENTINEL-twilio-key-secret-6b1d")} == {TWILIO_KEY_STORE[cloud]}
    assert {r.name for r in holding(run, "TWILIO_API_KEY_SECRET")} == {env.resource}  # no bot's
    read = PhoneSettings.from_env({**env.plain, "TWILIO_API_KEY_SECRET": "s", "TWILIO_AUTH_TOKEN": "t"},
                                  keyless=False, bot_channel_token="b" * 32).twilio_rest
    assert read is not None and (read.account_sid, read.user) == (TWILIO_ACCOUNT, API_KEY_SID)


@pytest.mark.parametrize(("overrides", "secrets", "said"), [
    ({"twilioAccountSid": TWILIO_ACCOUNT, "twilioApiKeySid": "SK123"}, TWILIO_KEY_SECRETS,
     "voicefleet:twilioApiKeySid must be a Twilio API key's SID, SK and 32 hex digits \\(got 5 characters, "
     "starting 'SK'\\)"),
    ({"twilioAccountSid": TWILIO_ACCOUNT, "twilioApiKeySid": "SENTINEL-looks-like-a-key-secret-01"},
     TWILIO_KEY_SECRETS, "voicefleet:twilioApiKeySid must be .*If this is the key's secret, it is now in plain "
                         "text .*revoke the key"),
    ({"twilioAccountSid": TWILIO_ACCOUNT, "twilioApiKeySid": API_KEY_SID}, {},
     "voicefleet:twilioApiKeySid needs twilioApiKeySecret.*pulumi config set --secret twilioApiKeySecret"),
    ({"twilioApiKeySid": API_KEY_SID}, TWILIO_KEY_SECRETS,
     "voicefleet:twilioApiKeySid needs twilioAccountSid.*pulumi config set twilioAccountSid AC"),
    ({"twilioAccountSid": TWILIO_ACCOUNT}, {"voicefleet:twilioApiKeySecret": "SENTINEL-twilio-key-secret-6b1d"},
     "voicefleet:twilioApiKeySecret is set together with twilioApiKeySid"),
    ({"twilioAccountSid": TWILIO_ACCOUNT, "twilioApiKeySid": API_KEY_SID, **POLICY},
     {"voicefleet:twilioApiKeySecret": "SENTINEL-twilio-key-secret-6b1d"},
     "voicefleet:twilioCallers places calls whose status callbacks Twilio signs .*--secret twilioAuthToken"),
])
def test_twilio_api_key_settings_the_dispatcher_would_refuse_fail_the_preview(
        stack: StackRunner, overrides: dict[str, str], secrets: dict[str, str], said: str) -> None:
    message = error(stack, "aws", secrets={**_secrets("aws"), **secrets}, **overrides)
    assert re.search(said, message), message
    assert "SENTINEL" not in message


def test_an_api_key_alone_transfers_calls_without_the_account_s_auth_token(stack: StackRunner) -> None:
    """A stack that places no call (no `twilioCallers`) may leave the auth token out, as the dispatcher does."""
    run = stack("aws", secrets={**_secrets("aws"), "voicefleet:twilioApiKeySecret": "SENTINEL-twilio-key-secret-6b1d"},
                twilioAccountSid=TWILIO_ACCOUNT, twilioApiKeySid=API_KEY_SID)
    (env,) = dispatcher_envs(run.registrations)
    assert "TWILIO_AUTH_TOKEN" not in env.masked and "TWILIO_API_KEY_SECRET" in env.masked


def test_a_stack_names_its_twilio_region_and_the_dispatcher_reaches_that_region_s_host(stack: StackRunner) -> None:
    run = stack("aws", secrets={**_secrets("aws"), **TWILIO_KEY_SECRETS}, twilioAccountSid=TWILIO_ACCOUNT,
                twilioApiKeySid=API_KEY_SID, twilioRegion="ie1", twilioEdge="dublin")
    (env,) = dispatcher_envs(run.registrations)
    assert (env.plain["TWILIO_REGION"], env.plain["TWILIO_EDGE"]) == ("ie1", "dublin")
    read = PhoneSettings.from_env({**env.plain, "TWILIO_API_KEY_SECRET": "s", "TWILIO_AUTH_TOKEN": "t"},
                                  keyless=False, bot_channel_token="b" * 32)
    assert read.twilio_api_url == "https://api.dublin.ie1.twilio.com"
    assert read.twilio_rest is not None and read.twilio_rest.region == "IE1"


@pytest.mark.parametrize(("overrides", "said"), [
    ({"twilioRegion": "ie1"}, r"voicefleet:twilioRegion is refused as the dispatcher would refuse it: "
                              r"voicefleet:twilioRegion=ie1 needs voicefleet:twilioEdge=dublin"),
    ({"twilioEdge": "sydney"}, r"voicefleet:twilioEdge is refused .*needs voicefleet:twilioRegion=au1"),
    ({"twilioRegion": "au1", "twilioEdge": "dublin"},
     r"voicefleet:twilioRegion=au1 needs voicefleet:twilioEdge=sydney"),
    ({"twilioRegion": "eu1"}, r"voicefleet:twilioRegion='eu1' is not one of us1, ie1, au1"),
    ({"twilioRegion": "us1"}, r"voicefleet:twilioRegion=us1 is Twilio's default: leave voicefleet:twilioRegion unset"),
])
def test_a_twilio_region_the_dispatcher_would_refuse_fails_the_preview_naming_the_key(
        stack: StackRunner, overrides: dict[str, str], said: str) -> None:
    message = error(stack, "aws", secrets=_secrets("aws"), **overrides)
    assert re.search(said, message), message
