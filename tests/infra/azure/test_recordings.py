"""The recording store on Azure: no public or shared-key access, TLS 1.2, one delete rule per
retention prefix, kept by a destroy, and open to the dispatcher's identity alone."""

from __future__ import annotations

import pytest

from stacks.azure.recordings import STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_BLOB_DELEGATOR, account_name
from stacks.config.settings import SettingsError
from stacks.tools.mocks import AZURE_SUBSCRIPTION, Registration, Run, unwrap
from tests.infra.azure.test_stack import env
from tests.infra.conftest import BASE, StackRunner
from tests.infra.helpers import changed_names, component_outputs

ACCOUNT = "azure-native:storage:StorageAccount"
POLICY = "azure-native:storage:ManagementPolicy"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
RULES = "key:acme audio=consent days=30; release:v7 days=7"
ON = {"recording": "on", "recordingRules": RULES}
SUBSCRIPTION = BASE["azure"]["azure-native:subscriptionId"]


def account(run: Run) -> Registration:
    (found,) = run.of_type(ACCOUNT)
    return found


def principal(run: Run, suffix: str) -> str:
    (identity,) = [r for r in run.of_type(IDENTITY) if r.name.endswith(suffix)]
    return str(identity.outputs["principalId"])


def recording_assignments(run: Run) -> list[Registration]:
    return [r for r in run.of_type(ASSIGNMENT) if "-recordings-" in r.name]


def test_recording_off_makes_no_account(stack: StackRunner) -> None:
    run = stack("azure")
    assert run.of_type(ACCOUNT) == [] and "RECORDING" not in env(run)


def test_the_account_takes_no_anonymous_or_shared_key_request(stack: StackRunner) -> None:
    found = account(stack("azure", **ON))
    assert {k: found.inputs[k] for k in ("allowBlobPublicAccess", "allowSharedKeyAccess", "minimumTlsVersion")} == {
        "allowBlobPublicAccess": False, "allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_2"}
    assert found.inputs["accountName"] == account_name(SUBSCRIPTION, "voicefleet-azure-test")
    assert 3 <= len(found.inputs["accountName"]) <= 24 and found.inputs["accountName"].isalnum()
    assert "immutableStorageWithVersioning" not in found.inputs


def test_one_delete_rule_per_retention_prefix(stack: StackRunner) -> None:
    (policy,) = stack("azure", **ON).of_type(POLICY)
    rules = unwrap(policy.inputs["policy"])["rules"]
    assert [(r["definition"]["filters"]["prefixMatch"],
             r["definition"]["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]) for r in rules] == [
        (["recordings/recordings/retain-7d/"], 7), (["recordings/recordings/retain-30d/"], 30)]


def test_holds_turn_on_version_level_immutability_and_versioning(stack: StackRunner) -> None:
    run = stack("azure", **ON, recordingHold="true")
    assert account(run).inputs["immutableStorageWithVersioning"] == {"enabled": True}
    (blob_service,) = run.of_type("azure-native:storage:BlobServiceProperties")
    assert blob_service.inputs["isVersioningEnabled"] is True


def test_with_holds_the_versions_an_erasure_leaves_go_under_the_whole_prefix(stack: StackRunner) -> None:
    """Versioning keeps an erased blob as a previous version: with the default retention (kept until
    erased, no per-day rule) it would stay for ever unless a rule over the whole prefix removes it."""
    (policy,) = stack("azure", recording="on", recordingHold="true").of_type(POLICY)
    (rule,) = unwrap(policy.inputs["policy"])["rules"]
    assert rule["definition"]["filters"] == {"blobTypes": ["blockBlob"], "prefixMatch": ["recordings/recordings/"]}
    assert rule["definition"]["actions"] == {"version": {"delete": {"daysAfterCreationGreaterThan": 1}}}
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"


def test_the_dispatcher_alone_gets_blob_data_on_the_container_and_delegation_on_the_account(
        stack: StackRunner) -> None:
    run = stack("azure", **ON)
    found = {(r.inputs["roleDefinitionId"].rsplit("/", 1)[-1], r.inputs["scope"], r.inputs["principalId"])
             for r in recording_assignments(run)}
    account_id = f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/voicefleet-azure-test/providers/" \
                 f"StorageAccount/{account(run).inputs['accountName']}"
    dispatcher = principal(run, "-dispatcher")
    assert found == {(STORAGE_BLOB_DATA_CONTRIBUTOR, f"{account_id}/blobServices/default/containers/recordings",
                      dispatcher), (STORAGE_BLOB_DELEGATOR, account_id, dispatcher)}
    bot = principal(run, "-bot")
    assert [r for r in run.of_type(ASSIGNMENT) if r.inputs["principalId"] == bot and "Storage" in r.inputs["scope"]] \
        == []


def test_the_dispatcher_is_told_the_container(stack: StackRunner) -> None:
    run = stack("azure", **ON)
    name = account(run).inputs["accountName"]
    assert env(run)["RECORDING_DESTINATION"]["value"] == f"https://{name}.blob.core.windows.net/recordings/recordings"
    assert env(run)["RECORDING_RULES"]["value"] == RULES
    assert component_outputs(run, "azure")["recordingAccount"] == name


def test_a_second_up_changes_nothing_and_a_retention_change_only_the_policy_and_setting(stack: StackRunner) -> None:
    first = stack("azure", **ON)
    previous = component_outputs(first, "azure")
    again = stack("azure", **ON, previous=previous)
    assert changed_names(again, stack("azure", **ON, previous=component_outputs(again, "azure"))) == []
    changed = changed_names(again, stack("azure", recording="on", recordingRules="key:acme days=14; release:v7 days=7",
                                         previous=previous))
    assert changed == [("azure-native:app:ContainerApp", "voicefleet-azure-test-dispatcher"),
                       (POLICY, "voicefleet-azure-test-recordings")]


def test_destroy_keeps_the_account_unless_told(stack: StackRunner) -> None:
    kept = stack("azure", **ON)
    assert all(r.retain_on_delete for r in kept.registrations if r.type.startswith("azure-native:storage:"))
    deleted = stack("azure", **ON, recordingDeleteOnDestroy="true")
    assert not any(r.retain_on_delete for r in deleted.registrations if r.type.startswith("azure-native:storage:"))


def test_a_customer_key_is_refused_on_azure_in_one_line(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("azure", **ON, recordingKmsKey="https://vault.vault.azure.net/keys/rec")
    assert "voicefleet:recordingKmsKey" in str(caught.value) and "\n" not in str(caught.value)
