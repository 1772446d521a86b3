"""The Azure keys refuse what Azure or the stack cannot do, naming the key and the way forward."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from tests.infra.conftest import SECRETS, StackRunner


def error(stack: StackRunner, **kwargs: object) -> str:
    with pytest.raises(SettingsError) as caught:
        stack("azure", **kwargs)
    return str(caught.value)


def test_a_store_password_is_refused_since_the_cache_has_its_own_key(stack: StackRunner) -> None:
    message = error(stack, secrets={**SECRETS, "voicefleet:storePassword": "x" * 32}, dispatcherMaxReplicas="3")
    assert "voicefleet:storePassword is not used on azure" in message and "pulumi config rm storePassword" in message


@pytest.mark.parametrize(("key", "value", "said"), [
    ("dispatcherMemory", "1000", "Container Apps consumption size"),
    ("botCpu", "300", "steps of 256"),
    ("dispatcherMaxReplicas", "0", "at least 1"),
    ("azureVnetCidr", "10.60.0.0/24", "/20 or larger"),
    ("azure-native:subscriptionId", "my-subscription", "GUID"),
])
def test_bad_azure_values_name_their_key(stack: StackRunner, key: str, value: str, said: str) -> None:
    message = error(stack, **{key: value})
    assert key in message and said in message


def test_max_below_min_replicas_is_refused(stack: StackRunner) -> None:
    message = error(stack, dispatcherMinReplicas="3", dispatcherMaxReplicas="2")
    assert "voicefleet:dispatcherMaxReplicas must be at least dispatcherMinReplicas=3" in message



def test_an_external_turn_service_needs_no_relay_and_no_key(stack: StackRunner) -> None:
    run = stack("azure", secrets={**SECRETS, "voicefleet:turnSharedSecret": "s" * 32,
                                  "voicefleet:botChannelToken": "t" * 40},
                turn="external", turnUrls="turn:turn.example.com:3478")
    assert not run.of_type("azure-native:compute:VirtualMachine")


def test_a_large_stack_with_derived_replicas_is_told_it_gains_a_store_and_how_to_keep_one_replica(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    stack("azure", size="large")
    (said,) = [w for w in warnings if "dispatcherMaxReplicas" in w]
    assert "dispatcherMinReplicas=3 and dispatcherMaxReplicas=6" in said and "Azure Managed Redis" in said
    assert "pulumi config set dispatcherMinReplicas 1; pulumi config set dispatcherMaxReplicas 1" in said
    warnings.clear()
    stack("azure", size="large", dispatcherMinReplicas="1", dispatcherMaxReplicas="1")
    stack("azure", size="large", dispatcherMinReplicas="3", dispatcherMaxReplicas="6")  # chosen: nothing to say
    assert [w for w in warnings if "dispatcherMaxReplicas" in w] == []
