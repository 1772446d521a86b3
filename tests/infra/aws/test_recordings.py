"""The recording bucket on AWS: private, encrypted, expiring by retention folder, kept by a destroy,
and open to the dispatcher's task role alone, with exactly the actions recording needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import Registration, Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import actions, changed_names, component_outputs, container, holding, mock_id

BUCKET = "aws:s3/bucket:Bucket"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
RULES = "key:acme audio=consent days=30; release:v7 days=7"
ON = {"recording": "on", "recordingRules": RULES}


def bucket(run: Run) -> Registration:
    (found,) = run.of_type(BUCKET)
    return found


def recording_policy(run: Run) -> list[dict[str, Any]]:
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-recordings")]
    return list(json.loads(unwrap(policy.inputs["policy"]))["Statement"])


def by_sid(run: Run) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in recording_policy(run)}


def test_recording_off_makes_no_bucket_and_no_grant(stack: StackRunner) -> None:
    run = stack("aws")
    assert [r for r in run.registrations if r.type.startswith("aws:s3/")] == []
    assert "RECORDING" not in {e["name"] for e in container(run, "-dispatcher")["environment"]}


def test_the_bucket_is_private_encrypted_and_owner_enforced(stack: StackRunner) -> None:
    run = stack("aws", **ON)
    name = bucket(run).outputs["bucket"]
    (block,) = run.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert {k: block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets", "bucket")} == {
        "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True,
        "bucket": name}
    (owner,) = run.of_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert owner.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    (encryption,) = run.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    assert run.of_type("aws:s3/bucketVersioning:BucketVersioning") == []
    assert "objectLockEnabled" not in bucket(run).inputs


def test_one_expiration_per_retention_and_incomplete_uploads_aborted_after_a_day(stack: StackRunner) -> None:
    (lifecycle,) = stack("aws", **ON).of_type(LIFECYCLE)
    rules = unwrap(lifecycle.inputs["rules"])
    # Default 0 (kept until erased: no rule), acme 30 days, v7 7 days: two expirations, then the abort.
    assert [(r["filter"]["prefix"], r.get("expiration", {}).get("days")) for r in rules] == [
        ("recordings/retain-7d/", 7), ("recordings/retain-30d/", 30), ("recordings/", None), ("", None)]
    assert rules[-1]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


def test_with_holds_what_an_erasure_leaves_goes_under_the_whole_prefix(stack: StackRunner) -> None:
    """Object Lock versions the bucket, and the dispatcher erases by key (a delete marker): the versions
    that hides must go everywhere under the prefix, retain-forever (the default) and the erasure records
    included, else an erased recording stays in the bucket for ever."""
    (lifecycle,) = stack("aws", recording="on", recordingHold="true").of_type(LIFECYCLE)
    rules = unwrap(lifecycle.inputs["rules"])
    (versions,) = [r for r in rules if "noncurrentVersionExpiration" in r]
    assert versions["filter"] == {"prefix": "recordings/"}
    assert versions["noncurrentVersionExpiration"] == {"noncurrentDays": 1}
    assert versions["expiration"] == {"expiredObjectDeleteMarker": True}
    assert versions["status"] == "Enabled"


def test_the_dispatcher_gets_exactly_the_recording_actions_on_its_prefix(stack: StackRunner) -> None:
    run = stack("aws", **ON)
    arn = f"arn:aws:s3:::{bucket(run).outputs['bucket']}"
    found = by_sid(run)
    assert set(found) == {"RecordingObjects", "RecordingList", "RecordingUploads"}
    # s3:PutObjectTagging: the dispatcher tags each object as it writes it (PutObject and
    # CreateMultipartUpload with `Tagging`), which S3 refuses without it.
    assert sorted(actions(found["RecordingObjects"])) == sorted([
        "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
        "s3:GetObject", "s3:DeleteObject"])
    assert found["RecordingObjects"]["Resource"] == [f"{arn}/recordings/*"]
    assert actions(found["RecordingList"]) == ["s3:ListBucket"]
    assert found["RecordingList"]["Condition"] == {"StringLike": {"s3:prefix": ["recordings/*"]}}
    assert actions(found["RecordingUploads"]) == ["s3:ListBucketMultipartUploads"]
    assert found["RecordingList"]["Resource"] == found["RecordingUploads"]["Resource"] == [arn]


def test_holds_and_a_customer_key_add_object_lock_versions_and_their_actions(stack: StackRunner) -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    run = stack("aws", **ON, recordingHold="true", recordingKmsKey=key)
    (lock,) = run.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    (versioning,) = run.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    (encryption,) = run.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"] == [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}, "bucketKeyEnabled": True}]
    found = by_sid(run)
    assert {"s3:PutObjectLegalHold", "s3:GetObjectLegalHold"} <= set(actions(found["RecordingObjects"]))
    # The dispatcher never deletes a version by its id: the lifecycle does, the role may not.
    assert "s3:DeleteObjectVersion" not in actions(found["RecordingObjects"])
    assert found["RecordingKey"]["Resource"] == [key]
    assert actions(found["RecordingKey"]) == ["kms:GenerateDataKey", "kms:Decrypt"]


def test_only_the_dispatchers_task_role_and_task_name_the_bucket(stack: StackRunner) -> None:
    """The bots' roles get nothing on the bucket, and their tasks never learn its name."""
    run = stack("aws", **ON)
    name = bucket(run).outputs["bucket"]
    (task_role,) = [r for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-dispatcher-task")]
    holders = [r for r in holding(run, name) if not r.type.startswith("aws:s3/")]
    assert sorted((r.type, r.name) for r in holders) == [
        ("aws:ecs/taskDefinition:TaskDefinition", "voicefleet-aws-test-dispatcher"),
        ("aws:iam/rolePolicy:RolePolicy", "voicefleet-aws-test-dispatcher-recordings")]
    (policy,) = [r for r in holders if r.type == "aws:iam/rolePolicy:RolePolicy"]
    assert policy.inputs["role"] == mock_id(task_role)
    bot_statements = [s for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if "-bot" in r.name
                      for s in json.loads(unwrap(r.inputs["policy"]))["Statement"]]
    assert [a for s in bot_statements for a in actions(s) if a.startswith("s3:")] == []


def test_the_dispatcher_is_told_where_and_what_to_record(stack: StackRunner) -> None:
    run = stack("aws", **ON, recordingRetentionDays="90", recordingTranscript="consent")
    env = {e["name"]: e["value"] for e in container(run, "-dispatcher")["environment"]}
    assert {k: v for k, v in env.items() if k.startswith("RECORDING")} == {
        "RECORDING": "on", "RECORDING_DESTINATION": f"s3://{bucket(run).outputs['bucket']}/recordings",
        "RECORDING_RULES": RULES, "RECORDING_RETENTION_DAYS": "90", "RECORDING_TRANSCRIPT": "consent"}
    assert component_outputs(run, "aws")["recordingBucket"] == bucket(run).outputs["bucket"]


def test_a_second_up_changes_nothing(stack: StackRunner) -> None:
    first = stack("aws", **ON)
    second = stack("aws", **ON, previous=component_outputs(first, "aws"))
    assert changed_names(first, second) == []


def test_a_retention_change_changes_the_lifecycle_and_the_dispatchers_setting_only(stack: StackRunner) -> None:
    first = stack("aws", **ON)
    second = stack("aws", recording="on", recordingRules="key:acme audio=consent days=14; release:v7 days=7",
                   previous=component_outputs(first, "aws"))
    changed = changed_names(first, second)
    assert [c for c in changed if c[0].startswith("aws:s3/")] == [(LIFECYCLE, "voicefleet-aws-test-recordings")]
    # RECORDING_RULES is the dispatcher's: its task definition follows, nothing else.
    assert {t for t, _ in changed} == {LIFECYCLE, "aws:ecs/taskDefinition:TaskDefinition"}


def test_destroy_keeps_the_bucket_unless_told(stack: StackRunner) -> None:
    kept = stack("aws", **ON)
    assert all(r.retain_on_delete for r in kept.registrations if r.type.startswith("aws:s3/"))
    assert bucket(kept).inputs["forceDestroy"] is False
    deleted = stack("aws", **ON, recordingDeleteOnDestroy="true")
    assert not any(r.retain_on_delete for r in deleted.registrations if r.type.startswith("aws:s3/"))
    assert bucket(deleted).inputs["forceDestroy"] is True


@pytest.mark.parametrize(("overrides", "key"), [
    ({"recordingRules": "team:acme days=3"}, "voicefleet:recordingRules"),
    ({"recordingRules": "key:acme days=-1"}, "voicefleet:recordingRules"),
    ({"recordingKmsKey": "alias/recordings"}, "voicefleet:recordingKmsKey"),
    ({"recording": "always"}, "voicefleet:recording"),
])
def test_a_bad_recording_setting_is_one_line_naming_its_key(stack: StackRunner, overrides: dict[str, str],
                                                            key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("aws", **{"recording": "on", **overrides})
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_a_destroy_always_leaves_a_held_buckets_versioning_and_lock(stack: StackRunner) -> None:
    """Deleting BucketVersioning suspends versioning, which S3 refuses on an Object Lock bucket, and Object Lock
    is never turned off: both stay, and a bucket with holds is never emptied by a destroy (its force_destroy
    would lift every legal hold; stacks/config/recording.py refuses recordingDeleteOnDestroy with holds)."""
    run = stack("aws", **ON, recordingHold="true")
    (versioning,) = run.of_type("aws:s3/bucketVersioning:BucketVersioning")
    (lock,) = run.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert versioning.retain_on_delete and lock.retain_on_delete
    assert bucket(run).retain_on_delete and bucket(run).inputs["forceDestroy"] is False


def test_the_bucket_refuses_any_request_without_tls(stack: StackRunner) -> None:
    run = stack("aws", **ON)
    arn = f"arn:aws:s3:::{bucket(run).outputs['bucket']}"
    (policy,) = run.of_type("aws:s3/bucketPolicy:BucketPolicy")
    assert policy.inputs["bucket"] == bucket(run).outputs["bucket"]
    assert json.loads(unwrap(policy.inputs["policy"]))["Statement"] == [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    (block,) = run.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert block.urn in policy.dependencies
