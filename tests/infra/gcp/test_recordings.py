"""The recording bucket on GCP: uniform access, no public access, Delete rules per retention folder,
kept by a destroy, and open to the dispatcher's account alone, which signs its URLs without a key."""

from __future__ import annotations

from stacks.tools.mocks import Registration, Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import changed_names, component_outputs, holding

BUCKET = "gcp:storage/bucket:Bucket"
ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
RULES = "key:acme audio=consent days=30; release:v7 days=7"
ON = {"recording": "on", "recordingRules": RULES}
DISPATCHER = "serviceAccount:vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com"


def bucket(run: Run) -> Registration:
    (found,) = run.of_type(BUCKET)
    return found


def role(run: Run, suffix: str) -> Registration:
    (found,) = [r for r in run.of_type(ROLE) if r.name.endswith(f"-recordings-{suffix}")]
    return found


def dispatcher_env(run: Run) -> dict[str, str]:
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (container,) = unwrap(service.inputs["template"])["containers"]
    return {e["name"]: e.get("value") for e in container["envs"]}


def test_recording_off_makes_no_bucket(stack: StackRunner) -> None:
    run = stack("gcp")
    assert run.of_type(BUCKET) == [] and "RECORDING" not in dispatcher_env(run)


def test_the_bucket_is_uniform_private_and_expires_by_retention_folder(stack: StackRunner) -> None:
    found = bucket(stack("gcp", **ON))
    assert found.inputs["uniformBucketLevelAccess"] is True
    assert found.inputs["publicAccessPrevention"] == "enforced"
    assert found.inputs["versioning"] == {"enabled": False} and "encryption" not in found.inputs
    assert unwrap(found.inputs["lifecycleRules"]) == [
        {"action": {"type": "Delete"}, "condition": {"age": 7, "matchesPrefixes": ["recordings/retain-7d/"]}},
        {"action": {"type": "Delete"}, "condition": {"age": 30, "matchesPrefixes": ["recordings/retain-30d/"]}},
        {"action": {"type": "Delete"}, "condition": {
            "daysSinceNoncurrentTime": 1, "withState": "ARCHIVED", "sendAgeIfZero": False}},
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 1}}]


def test_an_erased_or_expired_recording_is_not_kept_restorable(stack: StackRunner) -> None:
    """Cloud Storage's default soft delete keeps every deleted object restorable (and billed) for 7 days;
    0 turns it off."""
    assert bucket(stack("gcp", **ON)).inputs["softDeletePolicy"] == {"retentionDurationSeconds": 0}


def test_holds_turned_off_turn_versioning_off_and_still_remove_the_versions_it_kept(stack: StackRunner) -> None:
    """A bucket an earlier `up` versioned: left out, versioning stays as it was, and the versions it
    kept (erased recordings) would stay for ever without the noncurrent rule."""
    held = stack("gcp", **ON, recordingHold="true")
    released = stack("gcp", **ON, previous=component_outputs(held, "gcp"))
    assert bucket(released).inputs["versioning"] == {"enabled": False}
    assert [r["condition"] for r in unwrap(bucket(released).inputs["lifecycleRules"])
            if "daysSinceNoncurrentTime" in r["condition"]] == [
        {"daysSinceNoncurrentTime": 1, "withState": "ARCHIVED", "sendAgeIfZero": False}]


def test_holds_version_the_bucket_and_a_customer_key_encrypts_it(stack: StackRunner) -> None:
    key = "projects/vf-test/locations/europe-west4/keyRings/rec/cryptoKeys/rec"
    run = stack("gcp", **ON, recordingHold="true", recordingKmsKey=key)
    assert bucket(run).inputs["versioning"] == {"enabled": True}
    assert bucket(run).inputs["encryption"] == {"defaultKmsKeyName": key}
    assert "storage.objects.update" in role(run, "recorder").inputs["permissions"]
    # Noncurrent versions (an erasure, a header rewrite) go a day on; the provider adds `age: 0` to a
    # condition without age unless told not to.
    (noncurrent,) = [r for r in unwrap(bucket(run).inputs["lifecycleRules"])
                     if "daysSinceNoncurrentTime" in r["condition"]]
    assert noncurrent == {"action": {"type": "Delete"}, "condition": {
        "daysSinceNoncurrentTime": 1, "withState": "ARCHIVED", "sendAgeIfZero": False}}


def test_the_dispatcher_gets_the_recorders_permissions_on_this_bucket_and_signs_as_itself(
        stack: StackRunner) -> None:
    run = stack("gcp", **ON)
    assert sorted(role(run, "recorder").inputs["permissions"]) == sorted([
        "storage.objects.create", "storage.objects.get", "storage.objects.delete", "storage.objects.list",
        "storage.multipartUploads.create", "storage.multipartUploads.abort", "storage.multipartUploads.list",
        "storage.multipartUploads.listParts"])
    assert role(run, "signer").inputs["permissions"] == ["iam.serviceAccounts.signBlob"]
    (binding,) = run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert (binding.inputs["bucket"], binding.inputs["member"]) == (bucket(run).inputs["name"], DISPATCHER)
    (signer,) = [r for r in run.of_type("gcp:serviceaccount/iAMMember:IAMMember") if r.name.endswith("-signer")]
    assert signer.inputs["member"] == DISPATCHER
    assert signer.inputs["serviceAccountId"].endswith("/vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com")


def test_no_bot_identity_or_machine_is_given_the_bucket(stack: StackRunner) -> None:
    run = stack("gcp", **ON)
    name = bucket(run).inputs["name"]
    assert sorted(r.type for r in holding(run, name)) == [
        "gcp:cloudrunv2/service:Service", BUCKET, "gcp:storage/bucketIAMMember:BucketIAMMember"]
    assert all("bot" not in unwrap(r.inputs.get("member", "")) for r in holding(run, "recordings"))


def test_the_dispatcher_is_told_the_bucket(stack: StackRunner) -> None:
    run = stack("gcp", **ON)
    env = dispatcher_env(run)
    assert env["RECORDING_DESTINATION"] == "gs://vf-test-gcp-test-rec/recordings"
    assert (env["RECORDING"], env["RECORDING_RULES"]) == ("on", RULES)
    assert component_outputs(run, "gcp")["recordingBucket"] == "vf-test-gcp-test-rec"


def test_a_second_up_changes_nothing_and_a_retention_change_only_the_rules(stack: StackRunner) -> None:
    # Both are second `up`s from the same first one (the registry's keep rules follow the builds it read back).
    previous = component_outputs(stack("gcp", **ON), "gcp")
    again = stack("gcp", **ON, previous=previous)
    assert changed_names(again, stack("gcp", **ON, previous=component_outputs(again, "gcp"))) == []
    changed = changed_names(again, stack("gcp", recording="on", recordingRules="key:acme days=14",
                                         previous=previous))
    assert changed == [("gcp:cloudrunv2/service:Service", "voicefleet-gcp-test-dispatcher"),
                       (BUCKET, "voicefleet-gcp-test-recordings")]


def test_destroy_keeps_the_bucket_unless_told(stack: StackRunner) -> None:
    kept = bucket(stack("gcp", **ON))
    assert kept.retain_on_delete and kept.inputs["forceDestroy"] is False
    deleted = bucket(stack("gcp", **ON, recordingDeleteOnDestroy="true"))
    assert not deleted.retain_on_delete and deleted.inputs["forceDestroy"] is True
