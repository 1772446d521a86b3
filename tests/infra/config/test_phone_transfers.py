"""Where and how long calls may be transferred on a stack (stacks/config/phone_transfers.py): every cloud's
dispatcher reads phoneTransferTargets (a list) and phoneTransferTimeLimitSeconds as the settings its own
parser takes, and no bot does; a value the dispatcher would refuse fails the preview naming the key."""

from __future__ import annotations

import json
import re

import pytest

from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.transfer_target import TransferTarget
from stacks.tools.dispatcher_env import dispatcher_envs
from tests.infra.config.test_settings import error
from tests.infra.conftest import K8S_STACK_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import holding

TARGETS = ["+14155550123", "+4420*", "PBX.example.com"]
TRANSFERS = {"phoneTransferTargets": json.dumps(TARGETS), "phoneTransferTimeLimitSeconds": "5400"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_every_clouds_dispatcher_may_transfer_to_the_stacks_targets_and_no_bot_is_told(
        stack: StackRunner, cloud: str) -> None:
    run = stack(cloud, secrets=K8S_STACK_SECRETS if cloud == "k8s" else SECRETS, **TRANSFERS)
    (env,) = dispatcher_envs(run.registrations)
    assert {name: env.plain.get(name) for name in ("PHONE_TRANSFER_TARGETS", "PHONE_TRANSFER_TIME_LIMIT_SECONDS")} == {
        "PHONE_TRANSFER_TARGETS": "+14155550123,+4420*,PBX.example.com", "PHONE_TRANSFER_TIME_LIMIT_SECONDS": "5400"}
    read = PhoneSettings.from_env(env.plain, keyless=False, bot_channel_token=None)
    assert read.transfer_time_limit == 5400
    assert read.transfer_targets is not None
    assert read.transfer_targets.allows(TransferTarget("+442071838750"))
    assert read.transfer_targets.allows(TransferTarget("sip:desk@pbx.example.com"))
    assert not read.transfer_targets.allows(TransferTarget("+14155550124"))
    assert {r.name for r in holding(run, "+4420*")} == {env.resource}


def test_unset_and_pulumi_yamls_defaults_leave_the_dispatchers_own(stack: StackRunner) -> None:
    """`pulumi up` hands an unset key its declared default (`[]`, 0): no targets, the dispatcher's own limit."""
    for overrides in ({}, {"phoneTransferTargets": "[]", "phoneTransferTimeLimitSeconds": "0"}):
        (env,) = dispatcher_envs(stack("aws", **overrides).registrations)
        assert not {name for name in env.plain if name.startswith("PHONE_TRANSFER_")}, overrides


@pytest.mark.parametrize(("key", "value", "said"), [
    ("phoneTransferTargets", json.dumps(["4155550123"]),
     r"voicefleet:phoneTransferTargets is refused as the dispatcher would refuse it: "
     r"voicefleet:phoneTransferTargets: '4155550123' is none of a number in E\.164"),
    ("phoneTransferTargets", json.dumps(["+*"]), r"voicefleet:phoneTransferTargets: '\+\*' is none of"),
    ("phoneTransferTargets", json.dumps([14155550123]),
     r"voicefleet:phoneTransferTargets must be a list of strings.*quoted.*"
     r"pulumi config set --path 'phoneTransferTargets\[0\]'"),
    ("phoneTransferTargets", "+14155550123", r"voicefleet:phoneTransferTargets must be a list of strings"),
    ("phoneTransferTimeLimitSeconds", "-5", r"voicefleet:phoneTransferTimeLimitSeconds is refused as the "
                                            r"dispatcher would refuse it: voicefleet:phoneTransferTimeLimitSeconds=-5"),
    ("phoneTransferTimeLimitSeconds", "1h", r"voicefleet:phoneTransferTimeLimitSeconds='1h' is not a whole number"),
])
def test_transfer_settings_the_dispatcher_would_refuse_fail_the_preview_naming_the_key(
        stack: StackRunner, key: str, value: str, said: str) -> None:
    message = error(stack, "aws", **{key: value})
    assert re.search(said, message), message


@pytest.mark.parametrize("key", ["phoneTransferTargets", "phoneTransferTimeLimitSeconds"])
def test_a_transfer_key_set_as_a_secret_is_refused_rather_than_written_plain(stack: StackRunner, key: str) -> None:
    value = TRANSFERS[key]
    message = error(stack, "aws", secrets={**SECRETS, f"voicefleet:{key}": value})
    assert f"voicefleet:{key} is set as a secret" in message, message


def test_a_prefix_as_wide_as_a_country_code_is_warned_of_and_a_desks_prefix_is_not(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """`+1*` reaches every number of North America, its premium ones bar the risky prefixes: the preview
    says so; `+1415*` and an exact number are what the docs advise, and pass without a word."""
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *a, **k: warned.append(str(message)))
    stack("aws", phoneTransferTargets=json.dumps(["+1*", "+1415*", "+44*", "+14155550123", "pbx.example.com"]))
    said = [message for message in warned if message.startswith("voicefleet:phoneTransferTargets")]
    assert len(said) == 2, said
    assert "'+1*' is as wide as a country calling code" in said[0] and "+1900, +1976 only when listed" in said[0]
    assert "'+44*' is as wide" in said[1] and "only when listed" not in said[1]
    assert not any("'+1415*'" in message or "'+14155550123'" in message for message in said)
