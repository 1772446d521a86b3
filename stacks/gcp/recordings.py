"""RecordingBucket (GCP): the environment's private Cloud Storage bucket for session recordings.

Uniform bucket-level access (no object ACLs), public access prevention enforced, encrypted with
the customer's Cloud KMS key when one is given (Google's own keys otherwise), versioned when legal
holds are wanted (a temporary hold keeps an object, and versioning keeps what an overwrite would
replace). Retention is one Delete rule per day count (`age` and `matchesPrefix`
`<prefix>/retain-<N>d/`, dispatcher/artifacts/rules.py), and XML API multipart uploads left
incomplete are aborted after a day (the `AbortIncompleteMultipartUpload` action). Soft delete is
off: an erased or expired object is gone, not kept restorable for a week.

The dispatcher's service account gets a custom role on this bucket alone with the object and
multipart permissions recording uses, and may sign its URLs without a key: V4 signing through the
IAM Credentials `signBlob` method, granted by a role holding `iam.serviceAccounts.signBlob` alone
on the account itself, narrower than roles/iam.serviceAccountTokenCreator (which also mints access
and ID tokens). The bots' account gets nothing. `destroy` leaves the bucket unless told, and never
one that has had holds (Cloud Storage refuses to delete a held object: the destroy would stop halfway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_gcp.projects as gcp_projects
import pulumi_gcp.serviceaccount as gcp_serviceaccount
import pulumi_gcp.storage as gcp_storage

from dispatcher.artifacts.rules import retention_folder
from stacks.config.recording import RecordingSettings
from stacks.shared.recording_last_up import RecordingHolds

ABORT_INCOMPLETE_DAYS = 1
NONCURRENT_DAYS = 1
OBJECT_PERMISSIONS = (
    "storage.objects.create", "storage.objects.get", "storage.objects.delete", "storage.objects.list",
    # The XML API's multipart uploads (the S3-style parts the bot puts through signed URLs).
    "storage.multipartUploads.create", "storage.multipartUploads.abort", "storage.multipartUploads.list",
    "storage.multipartUploads.listParts",
)
HOLD_PERMISSIONS = ("storage.objects.update",)  # setting and clearing an object's temporary hold
SIGN_PERMISSIONS = ("iam.serviceAccounts.signBlob",)


def lifecycle_rules(settings: RecordingSettings) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"action": {"type": "Delete"},
         "condition": {"age": days, "matches_prefixes": [f"{settings.prefix}/{retention_folder(days)}/"]}}
        for days in settings.day_counts() if days]
    # What an overwrite or delete leaves as a noncurrent version goes a day later (unless held), whatever
    # `recordingHold` says now: a bucket an earlier `up` versioned keeps the versions it made (erased
    # recordings among them) once versioning is off, and an unversioned bucket has none to match. A
    # condition without `age` gets `age: 0` from the provider unless `send_age_if_zero` is false
    # (pulumi_gcp storage Bucket's own example): an always-true term, kept out all the same.
    rules.append({"action": {"type": "Delete"}, "condition": {"days_since_noncurrent_time": NONCURRENT_DAYS,
                                                              "with_state": "ARCHIVED", "send_age_if_zero": False}})
    rules.append({"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": ABORT_INCOMPLETE_DAYS}})
    return rules


class RecordingBucket(pulumi.ComponentResource):
    name: pulumi.Output[str]
    destination: pulumi.Output[str]  # RECORDING_DESTINATION: gs://<bucket>/<prefix>
    grants: list[pulumi.Resource]  # what the dispatcher waits for

    def __init__(self, name: str, settings: RecordingSettings, *, bucket_name: str, project: str, location: str,
                 account: gcp_serviceaccount.Account, held_before: pulumi.Input[bool] = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:RecordingBucket", name, None, opts)
        keep = not settings.delete_on_destroy
        bucket = gcp_storage.Bucket(
            name, name=bucket_name, project=project, location=location,
            uniform_bucket_level_access=True, public_access_prevention="enforced",
            encryption={"default_kms_key_name": settings.kms_key} if settings.kms_key else None,
            # Said either way: left out, the provider would keep an earlier `up`'s versioning on.
            versioning={"enabled": settings.hold},
            lifecycle_rules=cast(list[gcp_storage.BucketLifecycleRuleArgsDict], lifecycle_rules(settings)),
            # No soft delete: left out, Cloud Storage keeps every deleted object restorable (and billed) for
            # 7 days, an erased or expired recording among them; 0 turns it off (pulumi_gcp's
            # BucketSoftDeletePolicy). An object soft-deleted before this was set keeps its 7 days.
            soft_delete_policy={"retention_duration_seconds": 0},
            force_destroy=settings.delete_on_destroy,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep))
        member = pulumi.Output.concat("serviceAccount:", account.email)
        child = pulumi.ResourceOptions(parent=self)
        # The hold permission stays while the bucket has had holds (`held_before`: the last `up` said so), holds
        # off or not: the temporary holds placed stay, and only it lifts them.
        permissions = pulumi.Output.from_input(held_before).apply(
            lambda held: [*OBJECT_PERMISSIONS, *(HOLD_PERMISSIONS if settings.hold or held is True else ())])
        objects = self._role(name, "recorder", project, account, "voicefleet recorder",
                             "Write, read and erase session recordings in the stack's recording bucket", permissions)
        signer = self._role(name, "signer", project, account, "voicefleet URL signer",
                            "Sign the recording bucket's URLs as this account (IAM Credentials signBlob)",
                            SIGN_PERMISSIONS)
        self.grants = [
            objects, signer,
            gcp_storage.BucketIAMMember(name, bucket=bucket.name, role=objects.name, member=member, opts=child),
            gcp_serviceaccount.IAMMember(f"{name}-signer", service_account_id=account.name, role=signer.name,
                                         member=member, opts=child)]
        # Cloud Storage keeps no bucket-wide record of holds (a temporary hold is an object's): what was asked.
        self.holds = RecordingHolds(hold=settings.hold, held=settings.hold)
        self.name = bucket.name
        self.destination = pulumi.Output.concat("gs://", bucket.name, "/", settings.prefix)
        self.register_outputs({"name": self.name, "destination": self.destination})

    def _role(self, name: str, suffix: str, project: str, account: gcp_serviceaccount.Account, title: str,
              description: str, permissions: pulumi.Input[Sequence[str]]) -> gcp_projects.IAMCustomRole:
        # A deleted role's id stays reserved for 37 days: part of the account's unique id keeps re-creation free.
        base = f"{name}_{suffix}".replace("-", "_")
        return gcp_projects.IAMCustomRole(
            f"{name}-{suffix}", project=project,
            role_id=account.unique_id.apply(lambda unique: f"{base}_{unique[-8:]}"),
            title=title, description=description, permissions=permissions,
            opts=pulumi.ResourceOptions(parent=self))
