"""RecordingBucket (AWS): the environment's private S3 bucket for session recordings.

All public access blocked, ACLs off (BucketOwnerEnforced), encrypted (SSE-KMS with the customer's
key, else SSE-S3). When legal holds are wanted the bucket is versioned and Object Lock is turned on
by its own resource (`BucketObjectLockConfiguration`), which S3 takes for an existing versioned
bucket too: `recordingHold` turned on later keeps the bucket and its recordings (the bucket's own
`object_lock_enabled` would replace it). Neither is ever undone: S3 turns neither off. Retention is
one expiration rule per day count on `<prefix>/retain-<N>d/` (dispatcher/artifacts/rules.py);
every noncurrent version under the prefix goes a day after it stopped being current (what an
erasure or an expiry left behind on a bucket versioned now or before); every incomplete multipart
upload is aborted after a day.

`destroy` leaves the bucket (retain on delete) unless `recordingDeleteOnDestroy`, which a bucket with
holds never has (stacks/config/recording.py, stacks/shared/recording_last_up.py); the dispatcher's
task role gets only what recording needs (`statements`); the bots' roles nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_aws.s3 as aws_s3

from dispatcher.artifacts.rules import retention_folder
from stacks.aws.iam import statement
from stacks.config.recording import RecordingSettings
from stacks.shared.recording_last_up import RecordingHolds

ABORT_INCOMPLETE_DAYS = 1
NONCURRENT_DAYS = 1
MAX_BUCKET_PREFIX = 37  # 63, S3's longest name, less the provider's 26-character generated tail

# The Service Authorization Reference's "Actions, resources, and condition keys for Amazon S3" maps
# CreateMultipartUpload, UploadPart and CompleteMultipartUpload to s3:PutObject: no action of their own.
# The dispatcher tags every object with its key name and release (the `Tagging` of PutObject and
# CreateMultipartUpload, dispatcher/artifacts/s3_store.py), which S3 authorizes as s3:PutObjectTagging too:
# without it every recording is refused. No s3:DeleteObjectVersion: the dispatcher deletes by key alone
# (DeleteObjects without a VersionId); on a versioned bucket the lifecycle removes what that leaves.
OBJECT_ACTIONS = ("s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                  "s3:GetObject", "s3:DeleteObject")
HOLD_ACTIONS = ("s3:PutObjectLegalHold", "s3:GetObjectLegalHold")
BUCKET_ACTIONS = ("s3:ListBucket",)  # limited to the prefix by its s3:prefix condition
UPLOADS_ACTIONS = ("s3:ListBucketMultipartUploads",)  # the orphan sweep; takes no s3:prefix key
KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
LOCK_LABEL = "voicefleet.recording-object-lock"  # the dispatcher container's label: Object Lock as applied


def lifecycle_rules(settings: RecordingSettings) -> list[dict[str, Any]]:
    """One expiration per retention (kept-until-erased has none), the noncurrent versions' expiry, then
    the bucket-wide abort."""
    rules: list[dict[str, Any]] = []
    for days in settings.day_counts():
        if not days:
            continue
        # A held session's expiry still comes: Object Lock keeps the held version, not its key, so S3 puts a
        # delete marker over it, and no lifecycle filter can leave held objects out (a filter matches a
        # prefix, tags and sizes). docs/recording.md, "Legal holds", says what that does and how to recover.
        rules.append({"id": f"expire-{retention_folder(days)}", "status": "Enabled",
                      "filter": {"prefix": f"{settings.prefix}/{retention_folder(days)}/"},
                      "expiration": {"days": days}})
    # On a versioned bucket (holds on now, or at an earlier `up`: S3 never stops versioning a bucket with
    # Object Lock) an erasure (a delete by key) or an expiry only hides an object behind a delete marker,
    # and a header rewrite leaves the old object as a noncurrent version. Under the whole prefix,
    # retain-forever and the erasure records included, those versions go a day later (a held version
    # stays: Object Lock refuses the lifecycle too) and the markers left alone after them. Whatever
    # `recordingHold` says now: an unversioned bucket has no noncurrent version for it to match.
    rules.append({"id": "expire-noncurrent-versions", "status": "Enabled",
                  "filter": {"prefix": f"{settings.prefix}/"},
                  "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
                  "expiration": {"expired_object_delete_marker": True}})
    rules.append({"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {"prefix": ""},
                  "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_INCOMPLETE_DAYS}})
    return rules


def tls_only(arn: pulumi.Input[str]) -> dict[str, Any]:
    """The bucket policy's one statement: every request without TLS refused, whoever sends it."""
    return {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, pulumi.Output.concat(arn, "/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


class RecordingBucket(pulumi.ComponentResource):
    bucket: pulumi.Output[str]
    arn: pulumi.Output[str]
    destination: pulumi.Output[str]  # RECORDING_DESTINATION: s3://<bucket>/<prefix>

    def __init__(self, name: str, settings: RecordingSettings, bucket_prefix: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:RecordingBucket", name, None, opts)
        self._settings = settings
        keep = not settings.delete_on_destroy
        bucket = aws_s3.Bucket(
            name, bucket_prefix=f"{bucket_prefix[:MAX_BUCKET_PREFIX - 1].rstrip('-')}-",
            # Asked to, a destroy empties it first (lifting legal holds: never asked for a bucket with holds);
            # otherwise it stays, recordings and all.
            force_destroy=settings.delete_on_destroy,
            # Object Lock is the BucketObjectLockConfiguration's below. A bucket made by an earlier release
            # with `object_lock_enabled` keeps it in its state: a change of it would replace the bucket
            # (terraform-provider-aws marks it ForceNew), so it is never compared.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep, ignore_changes=["objectLockEnabled"]))
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=keep)
        block = aws_s3.BucketPublicAccessBlock(name, bucket=bucket.id, block_public_acls=True,
                                               block_public_policy=True, ignore_public_acls=True,
                                               restrict_public_buckets=True, opts=kept)
        # Recordings never travel in clear: S3 refuses any request not over TLS, a signed URL's included.
        # After the access block: S3 answers a bucket's policy and access block changes at once with
        # OperationAborted.
        aws_s3.BucketPolicy(name, bucket=bucket.id, policy=pulumi.Output.json_dumps({
            "Version": "2012-10-17", "Statement": [tls_only(bucket.arn)]}),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep, depends_on=[block]))
        aws_s3.BucketOwnershipControls(name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"},
                                       opts=kept)
        by_default: dict[str, Any] = ({"sse_algorithm": "aws:kms", "kms_master_key_id": settings.kms_key}
                                      if settings.kms_key else {"sse_algorithm": "AES256"})
        aws_s3.BucketServerSideEncryptionConfiguration(
            name, bucket=bucket.id,
            # A bucket key cuts the KMS requests (and their cost) per object: one data key per bucket for a while.
            rules=[cast(aws_s3.BucketServerSideEncryptionConfigurationRuleArgsDict, {
                "apply_server_side_encryption_by_default": by_default,
                **({"bucket_key_enabled": True} if settings.kms_key else {})})], opts=kept)
        self.lock: aws_s3.BucketObjectLockConfiguration | None = None
        if settings.hold:
            # Both always left, by a destroy and by an `up` without them: S3 turns neither off. Deleting the
            # versioning suspends it, which S3 refuses on an Object Lock bucket. The lock's delete is not a no-op
            # (the provider writes ObjectLockEnabled=Enabled with no rule, clearing any default retention),
            # harmless here only because it is never run (retain_on_delete) and this lock sets no rule.
            forever = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
            versioning = aws_s3.BucketVersioning(name, bucket=bucket.id, versioning_configuration={"status": "Enabled"},
                                                 opts=forever)
            # S3 turns Object Lock on for an existing bucket once it is versioned: the bucket is kept.
            self.lock = aws_s3.BucketObjectLockConfiguration(
                name, bucket=bucket.id, object_lock_enabled="Enabled",
                opts=pulumi.ResourceOptions.merge(forever, pulumi.ResourceOptions(depends_on=[versioning])))
        # What the bucket holds, from the applied resources: the lock's own state (absent when an `up --target`
        # or a failed create left it out), or the bucket's `object_lock_enabled`, which a bucket an earlier
        # release made with Object Lock keeps true in its state (never compared, above).
        hold = (self.lock.object_lock_enabled.apply(lambda on: on == "Enabled") if self.lock
                else pulumi.Output.from_input(False))
        self.holds = RecordingHolds(hold=hold, held=pulumi.Output.all(hold, bucket.object_lock_enabled).apply(
            lambda values: values[0] is True or values[1] is True))
        # Kept with the bucket: what stays after a destroy still expires as the rules said.
        rules = cast(list[aws_s3.BucketLifecycleConfigurationRuleArgsDict], lifecycle_rules(settings))
        aws_s3.BucketLifecycleConfiguration(name, bucket=bucket.id, rules=rules, opts=kept)
        self.bucket = bucket.bucket
        self.arn = bucket.arn
        # The dispatcher learns at start-up whether the bucket is versioned (dispatcher/artifacts/s3_store.py):
        # with holds its destination is the lock's bucket, so a new dispatcher starts only once Object Lock is
        # on, and the lock's state is a label of its container, so holds turned on roll a new dispatcher out.
        self.destination = pulumi.Output.concat("s3://", self.lock.bucket if self.lock else bucket.bucket, "/",
                                                settings.prefix)
        self.dispatcher_labels: dict[str, pulumi.Input[str]] = (
            {LOCK_LABEL: self.lock.object_lock_enabled.apply(lambda on: on or "")} if self.lock else {})
        # The dispatcher's grant waits for the lock too: a hold asked before it would be refused as if the
        # bucket had none.
        self.grant_waits_for: list[pulumi.Resource] = [self.lock] if self.lock else []
        self.register_outputs({"bucket": self.bucket, "destination": self.destination})

    def statements(self) -> Sequence[dict[str, Any]]:
        """The dispatcher's grant: its prefix's objects and uploads, the listing of that prefix, the key."""
        settings = self._settings
        objects = pulumi.Output.concat(self.arn, "/", settings.prefix, "/*")
        # The holds grant stays while the bucket has Object Lock (as the cloud's state says), `recordingHold`
        # off or not: without it the dispatcher could no longer lift the holds it placed.
        held = pulumi.Output.from_input(self.holds.held).apply(lambda on: bool(on) or settings.hold)
        found = [{**statement(OBJECT_ACTIONS, [objects], sid="RecordingObjects"),
                  "Action": held.apply(lambda on: [*OBJECT_ACTIONS, *(HOLD_ACTIONS if on else ())])},
                 statement(BUCKET_ACTIONS, [self.arn], sid="RecordingList",
                           condition={"StringLike": {"s3:prefix": [f"{settings.prefix}/*"]}}),
                 statement(UPLOADS_ACTIONS, [self.arn], sid="RecordingUploads")]
        if settings.kms_key:
            found.append(statement(KMS_ACTIONS, [settings.kms_key], sid="RecordingKey"))
        return found
