"""The recording bucket's settings: `recording*` keys, read and checked before any resource exists.

Off by default, and then nothing is made: recording a person is the operator's decision. On (or
`consent`), each cloud stack makes one private bucket for the environment and turns the retention
of `recordingRules`/`recordingRetentionDays` into one lifecycle rule per day count, read with the
dispatcher's own parser (dispatcher/artifacts/rules.py), so a rule the dispatcher would refuse fails
the plan instead, in one line naming the key. A k8s stack makes no bucket: it is handed an
S3-compatible store (`recordingDestination`, `recordingEndpoint` and its key as secrets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from dispatcher.artifacts.rules import MAX_DAYS, POLICIES, Keeping, RecordingRules, RulesError, parse_rules
from stacks.config.reader import Reader

PREFIX = "recordings"  # the folder the dispatcher writes under, in the stack's own bucket
# `usageFiles`: the dispatcher's daily usage file (USAGE_FILES), beside the recordings or not at all. It goes
# under the prefix, so the dispatcher's recordings grant covers it on every cloud (put, read, tag, overwrite),
# and no retention folder's rule expires it.
USAGE_FILES_KEY, USAGE_FILES_CHOICES, USAGE_BESIDE_RECORDINGS = "usageFiles", ("off", "recordings"), "recordings"
# Confirms the `up` that turns recording off on a stack whose last `up` made the store
# (stacks/shared/recording_last_up.py).
REMOVE_STORE = "recordingRemoveStore"
HELD_STORE_DESTROY = (
    "a destroy would delete held recordings (emptying an S3 bucket lifts each legal hold first) or stop halfway "
    "(Cloud Storage and Azure refuse to delete a held object), so a store with holds is always left by a destroy. "
    "`pulumi config set recordingDeleteOnDestroy false`; to remove the store, lift every hold, `pulumi destroy`, "
    "then delete it yourself (docs/recording.md, \"Changing the recording store\")")
# Pulumi refuses a protected resource's delete only as that step runs (pulumi/pulumi pkg/resource/deploy/step.go,
# DeleteStep.Apply), and the bucket depends on no protected resource: a destroy that stops at a registry may
# already have emptied it.
PROTECTED_STORE_DESTROY = (
    "protect (which `profile: prod` sets) keeps the stack's stateful resources from a destroy, but a destroy stops "
    "at the first protected one only once it reaches it, and may have emptied the recording store before. "
    "`pulumi config set recordingDeleteOnDestroy false` (a destroy then leaves the store and its recordings); to "
    "delete them with the stack, `pulumi config set protect false` and `pulumi up` first (docs/recording.md, "
    "\"Changing the recording store\")")
# An S3 bucket name and its prefix (the k8s stack's recordingDestination).
_S3_DESTINATION = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[A-Za-z0-9._/-]*))?$")
_KMS_KEY = {
    # An alias ARN is refused by S3's bucket key and by IAM's kms: grant alike: a key ARN names one key.
    "aws": re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$"),
    "gcp": re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$"),
}
_KMS_EXAMPLE = {
    "aws": "arn:aws:kms:<region>:<account>:key/<key id>",
    "gcp": "projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>",
}


@dataclass(frozen=True)
class S3CompatibleStore:
    """k8s: where the dispatcher writes and how it signs in (secrets stay Outputs)."""

    destination: str  # s3://bucket/prefix
    endpoint: str  # https://… : AWS_ENDPOINT_URL_S3
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class RecordingSettings:
    policy: str  # "on" or "consent" (off: no RecordingSettings at all)
    transcript: str
    rules_text: str  # RECORDING_RULES as given (the dispatcher parses it again)
    rules: RecordingRules
    retention_days: int  # RECORDING_RETENTION_DAYS: the default (0: kept until erased)
    hold: bool  # legal holds possible: S3 Object Lock / GCS versioning / Azure version-level immutability
    kms_key: str | None  # the customer-managed key; None: the cloud's own keys
    delete_on_destroy: bool  # false: `destroy` leaves the bucket and its recordings
    usage_files: bool = False  # USAGE_FILES=recordings: the daily usage file beside the recordings
    prefix: str = PREFIX
    store: S3CompatibleStore | None = None  # k8s only

    def day_counts(self) -> list[int]:
        """Every retention a session can be given, one lifecycle rule each (0, kept until erased, has none)."""
        return self.rules.retention_days()

    def environment(self, destination: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
        """Where the dispatcher records (dispatcher/artifacts/settings.py), made by the stack; the recording
        keys' own settings are theirs in stacks/config/dispatcher_keys.py."""
        return {"RECORDING_DESTINATION": destination}


def load(cfg: Reader, cloud: str) -> RecordingSettings | None:
    policy = cfg.string("recording", choices=POLICIES)
    usage_files = cfg.string(USAGE_FILES_KEY, choices=USAGE_FILES_CHOICES) == USAGE_BESIDE_RECORDINGS
    if policy == "off":
        if usage_files:
            raise cfg.fail(USAGE_FILES_KEY, "is recordings, but recording is off: the daily usage file goes beside "
                                            "the recordings, in the recording store, which the stack then does not "
                                            f"have. `pulumi config set {USAGE_FILES_KEY} off`, or turn recording on "
                                            "(docs/operations.md, \"A daily usage file for billing\")")
        return None
    transcript = cfg.string("recordingTranscript", choices=POLICIES)
    days = cfg.integer("recordingRetentionDays", minimum=0, maximum=MAX_DAYS)
    text = cfg.optional("recordingRules") or ""
    try:
        rules = parse_rules(text, Keeping(audio=policy, transcript=transcript, days=days))
    except RulesError as error:
        raise cfg.fail("recordingRules", f"{error}") from None
    kms_key = cfg.optional("recordingKmsKey")
    if kms_key is not None and cloud in _KMS_KEY and not _KMS_KEY[cloud].match(kms_key):
        raise cfg.fail("recordingKmsKey",
                       f"must be a key's full id on {cloud}, {_KMS_EXAMPLE[cloud]} (got {kms_key!r})")
    if kms_key is not None and cloud == "azure":
        # A customer key needs an identity the key's vault trusts before the account exists: not made yet.
        raise cfg.fail("recordingKmsKey", "is not offered on azure yet: the account is encrypted with "
                                          "Microsoft-managed keys; `pulumi config rm recordingKmsKey`")
    if kms_key is not None and cloud == "k8s":
        raise cfg.fail("recordingKmsKey", "is for the cloud stacks' own buckets: a k8s stack's store encrypts as its "
                                          "owner set it up; `pulumi config rm recordingKmsKey`")
    if cfg.boolean(REMOVE_STORE):
        raise cfg.fail(REMOVE_STORE, "confirms the `up` that turns recording off and takes the store out of the "
                                     f"stack, not one that records; `pulumi config rm {REMOVE_STORE}`")
    hold, delete_on_destroy = cfg.boolean("recordingHold"), cfg.boolean("recordingDeleteOnDestroy")
    if hold and delete_on_destroy and cloud != "k8s":
        raise cfg.fail("recordingDeleteOnDestroy", f"is true with recordingHold: {HELD_STORE_DESTROY}")
    if cfg.boolean("protect") and delete_on_destroy and cloud != "k8s":
        raise cfg.fail("recordingDeleteOnDestroy", f"is true with protect: {PROTECTED_STORE_DESTROY}")
    return RecordingSettings(
        policy=policy, transcript=transcript, rules_text=text.strip(), rules=rules, retention_days=days,
        hold=hold, kms_key=kms_key, delete_on_destroy=delete_on_destroy, usage_files=usage_files,
        store=_store(cfg) if cloud == "k8s" else None)


def remove_store(cfg: Reader) -> bool:
    """`recordingRemoveStore`: true confirms an `up` with recording off that takes the last one's store out
    of the stack (a stack that records refuses it, in `load`)."""
    return cfg.boolean(REMOVE_STORE)


def _store(cfg: Reader) -> S3CompatibleStore:
    destination = cfg.optional("recordingDestination")
    if destination is None or not _S3_DESTINATION.match(destination):
        raise cfg.fail("recordingDestination", f"must be s3://bucket/prefix on k8s, the S3-compatible store the "
                                               f"dispatcher writes to (got {destination!r})")
    endpoint = cfg.optional("recordingEndpoint")
    if endpoint is None or not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?/?", endpoint):
        raise cfg.fail("recordingEndpoint",
                       f"must be the store's URL, e.g. https://minio.example.com (got {endpoint!r})")
    key_id = cfg.secret("recordingAccessKeyId", required=True)
    secret = cfg.secret("recordingSecretAccessKey", required=True)
    assert key_id is not None and secret is not None  # required=True raised already
    return S3CompatibleStore(destination=destination, endpoint=endpoint.rstrip("/"), access_key_id=key_id,
                             secret_access_key=secret)
