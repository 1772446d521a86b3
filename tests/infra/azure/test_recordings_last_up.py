"""The Azure recording account across `up`s: each run here is the program's next `up` after the one before it,
its last outputs read back (as `pulumi up` does), whatever tool starts it.

Azure sets an account's version-level immutability only as the account is made and never turns it off:
`recordingHold` changed on an existing account is refused, in the program and in the plan, naming the way.
"""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import Deployed, Run, run_program
from stacks.tools.preflight import immutable
from tests.infra.conftest import SECRETS, StackRunner, config_for
from tests.infra.helpers import component_outputs, with_state

ACCOUNT = "azure-native:storage:StorageAccount"
POLICY = "azure-native:storage:ManagementPolicy"
ON = {"recording": "on"}
HELD = {**ON, "recordingHold": "true"}
OUTPUT = "recordingStore"  # what the next `up` reads back (stacks/shared/recording_last_up.py)


def account_name(run: Run) -> str:
    (account,) = run.of_type(ACCOUNT)
    return str(account.inputs["accountName"])


def test_holds_turned_on_for_an_existing_account_are_refused_with_the_way_out(stack: StackRunner) -> None:
    """ARM refuses immutableStorageWithVersioning on an account made without it: the `up` would fail halfway."""
    first = stack("azure", **ON)
    with pytest.raises(SettingsError) as refused:
        stack("azure", **HELD, previous=component_outputs(first, "azure"))
    message = str(refused.value)
    assert f"recordingHold is true, but this stack's recording account {account_name(first)!r} was made without it" \
        in message
    assert "only as an account is made" in message and "pulumi config set recordingHold false" in message
    assert "\n" not in message
    # A stack that starts recording with holds makes its account so: nothing to refuse.
    assert stack("azure", **HELD, previous=component_outputs(stack("azure"), "azure")).of_type(ACCOUNT)


def test_the_plan_refuses_holds_changed_on_an_existing_account(stack: StackRunner) -> None:
    plain, held = stack("azure", **ON), stack("azure", **HELD)
    (found,) = immutable.violations(plain.registrations, held.registrations, {"recordingHold": "true"})
    assert "immutableStorageWithVersioning.enabled from None to True" in found and "recordingHold=true" in found
    (found,) = immutable.violations(held.registrations, plain.registrations, {"recordingHold": "false"})
    assert "from True to None" in found
    assert immutable.violations(stack("azure").registrations, held.registrations, {"recording": "on"}) == []


def test_holds_turned_off_are_refused_and_the_previous_versions_rule_stays(stack: StackRunner) -> None:
    """The account stays versioned for good: without holds the rule removing erased recordings' previous
    versions would go, and every erasure leave a version behind, billed for ever."""
    first = stack("azure", **HELD)
    with pytest.raises(SettingsError) as refused:
        stack("azure", **ON, previous=component_outputs(first, "azure"))
    message = str(refused.value)
    assert "never turns an account's version-level immutability off" in message
    assert "pulumi config set recordingHold true" in message
    again = stack("azure", **HELD, previous=component_outputs(first, "azure"))
    (policy,) = again.of_type(POLICY)
    assert [rule["name"] for rule in policy.inputs["policy"]["rules"]] == ["expire-previous-versions"]


def test_recording_off_after_an_account_is_refused_until_confirmed(stack: StackRunner) -> None:
    first = stack("azure", **ON)
    with pytest.raises(SettingsError) as refused:
        stack("azure", previous=component_outputs(first, "azure"))
    message = str(refused.value)
    assert f"made the recording account {account_name(first)!r}" in message
    assert "pulumi config set recordingRemoveStore true" in message
    assert stack("azure", previous=component_outputs(first, "azure"), recordingRemoveStore="true").of_type(ACCOUNT) \
        == []


def test_an_account_of_an_earlier_release_meets_no_refusal_about_its_holds(stack: StackRunner) -> None:
    """An `up` before this release exported the account's name alone: its holds are unknown, and the plan's
    check is what refuses a change of them there."""
    earlier = {k: v for k, v in component_outputs(stack("azure", **HELD), "azure").items() if k != OUTPUT}
    assert component_outputs(stack("azure", **HELD, previous=earlier), "azure")[OUTPUT]["held"] is True


def test_the_store_output_says_what_the_account_applied(stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held is the account's version-level immutability as applied, not `recordingHold` as asked: an account
    whose state says it is off (an `up --target` that left it out, a create that did not apply it) records no
    holds."""
    with_state(monkeypatch, ACCOUNT, immutableStorageWithVersioning={"enabled": False})
    run = run_program(config_for("azure", HELD), list(SECRETS), stack="azure-test", deployed=Deployed())
    assert component_outputs(run, "azure")[OUTPUT] == {"hold": False, "held": False, "deleteOnDestroy": False}


def test_with_holds_the_dispatchers_grants_wait_for_versioning(stack: StackRunner) -> None:
    """The dispatcher starts after its grants and learns then whether the account keeps versions."""
    run = stack("azure", **HELD)
    (versioning,) = run.of_type("azure-native:storage:BlobServiceProperties")
    grants = [r for r in run.of_type("azure-native:authorization:RoleAssignment") if "-recordings-" in r.name]
    assert sorted(r.name.rsplit("-", 1)[-1] for r in grants) == ["delegator", "recorder"]
    assert all(versioning.urn in r.dependencies for r in grants)
