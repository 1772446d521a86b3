"""The AWS recording bucket across `up`s: each run here is the program's next `up` after the one before it,
its last outputs read back (as `pulumi up` does), whatever tool starts it.

Holds turned on keep the bucket and its recordings; holds turned off, a bucket with holds deleted by a
destroy and `recording: off` taking the bucket out of the stack are refused, naming the way forward.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import Deployed, Registration, Run, run_program, unwrap
from stacks.tools.preflight import immutable
from tests.infra.conftest import SECRETS, StackRunner, config_for
from tests.infra.helpers import changed_names, component_outputs, container, watched_monitors, with_state

BUCKET = "aws:s3/bucket:Bucket"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
POLICY = "aws:iam/rolePolicy:RolePolicy"
ON = {"recording": "on", "recordingRules": "key:acme days=30"}
HELD = {**ON, "recordingHold": "true"}
OUTPUT = "recordingStore"  # what the next `up` reads back (stacks/shared/recording_last_up.py)


def one(run: Run, typ: str) -> Registration:
    (found,) = run.of_type(typ)
    return found


def policy_statements(run: Run) -> list[dict[str, Any]]:
    (policy,) = [r for r in run.of_type(POLICY) if r.name.endswith("-recordings")]
    return list(json.loads(unwrap(policy.inputs["policy"]))["Statement"])


def after(stack: StackRunner, first: Run, **overrides: str) -> Run:
    """The `up` after `first`, with `overrides` as the stack's configuration."""
    return stack("aws", previous=component_outputs(first, "aws"), **overrides)


def test_holds_turned_on_keep_the_bucket_and_turn_object_lock_on_for_it(stack: StackRunner) -> None:
    """`object_lock_enabled` on the bucket forces a new bucket (terraform-provider-aws: ForceNew): every
    recording left in the old one, which the dispatcher no longer names. Object Lock's own resource turns
    it on for the versioned bucket, which S3 takes."""
    first = stack("aws", **ON)
    held = after(stack, first, **HELD)
    assert unwrap(one(held, BUCKET).inputs) == unwrap(one(first, BUCKET).inputs)
    assert one(held, BUCKET).outputs["bucket"] == one(first, BUCKET).outputs["bucket"]
    # A bucket an earlier release made with object_lock_enabled keeps it in its state: never compared.
    assert "objectLockEnabled" in one(held, BUCKET).ignore_changes
    versioning, lock = one(held, VERSIONING), one(held, LOCK)
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    assert lock.inputs == {"bucket": one(held, BUCKET).outputs["bucket"], "objectLockEnabled": "Enabled"}
    assert versioning.urn in lock.dependencies  # S3 turns Object Lock on only for a versioned bucket
    # Neither is undone by an `up` without them nor by a destroy: S3 refuses to.
    assert versioning.retain_on_delete and lock.retain_on_delete


def test_the_plan_no_longer_refuses_holds_for_an_existing_bucket(stack: StackRunner) -> None:
    deployed, held = stack("aws", **ON), stack("aws", **HELD)
    assert immutable.violations(deployed.registrations, held.registrations, {"recordingHold": "true"}) == []


def test_holds_turned_off_are_refused_with_the_way_out(stack: StackRunner) -> None:
    first = stack("aws", **HELD)
    with pytest.raises(SettingsError) as refused:
        after(stack, first, **ON)
    message = str(refused.value)
    assert f"recording bucket {one(first, BUCKET).outputs['bucket']!r} was made with holds" in message
    assert "never turns a bucket's Object Lock off" in message and "pulumi config set recordingHold true" in message
    assert "\n" not in message
    again = after(stack, first, **HELD)  # kept on: goes through, and the next `up` still knows
    assert component_outputs(again, "aws")[OUTPUT] == {"hold": True, "held": True, "deleteOnDestroy": False}


def test_noncurrent_versions_expire_whatever_holds_say(stack: StackRunner) -> None:
    """A bucket versioned for holds stays versioned: every later erasure leaves a version, which must go."""
    for run in (stack("aws", **ON), stack("aws", **HELD)):
        rules = unwrap(one(run, LIFECYCLE).inputs["rules"])
        (versions,) = [r for r in rules if "noncurrentVersionExpiration" in r]
        assert versions["filter"] == {"prefix": "recordings/"}
        assert versions["noncurrentVersionExpiration"] == {"noncurrentDays": 1}


def test_holds_with_delete_on_destroy_are_refused_in_one_line(stack: StackRunner) -> None:
    """A destroy empties the bucket with force_destroy, which lifts every legal hold to delete the held recordings."""
    with pytest.raises(SettingsError) as refused:
        stack("aws", **HELD, recordingDeleteOnDestroy="true")
    message = str(refused.value)
    assert message.startswith("Invalid stack configuration: voicefleet:recordingDeleteOnDestroy is true with "
                              "recordingHold")
    assert "lifts each legal hold" in message and "pulumi config set recordingDeleteOnDestroy false" in message
    assert "\n" not in message


def test_recording_off_after_a_bucket_is_refused_until_confirmed(stack: StackRunner) -> None:
    """Left out of the program, the bucket is deleted at the end of the `up` (with its recordings, when the last
    `up` said recordingDeleteOnDestroy) or dropped from the stack: only a confirmed `up` does either."""
    first = stack("aws", **ON, recordingDeleteOnDestroy="true")
    name = one(first, BUCKET).outputs["bucket"]
    with pytest.raises(SettingsError) as refused:
        after(stack, first)
    message = str(refused.value)
    assert f"recording is off, but this stack's last `up` made the recording bucket {name!r}" in message
    assert "delete it with every recording in it (recordingDeleteOnDestroy was true)" in message
    assert "pulumi config set recordingRemoveStore true" in message and "pulumi config set recording on" in message
    removed = after(stack, first, recordingRemoveStore="true")
    assert [r for r in removed.registrations if r.type.startswith("aws:s3/")] == []
    assert not {OUTPUT, "recordingBucket"} & set(component_outputs(removed, "aws"))
    kept = stack("aws", **ON)
    with pytest.raises(SettingsError, match="leave it behind, recordings and all, outside the stack"):
        after(stack, kept)


def earlier_release(first: Run) -> dict[str, Any]:
    """The outputs an `up` of a release before `recordingStore` left: the bucket's name alone."""
    return {key: value for key, value in component_outputs(first, "aws").items() if key != OUTPUT}


def up(overrides: dict[str, str], previous: dict[str, Any]) -> Run:
    """One `up` run afresh (never a cached run: the provider is patched), after outputs `previous`."""
    return run_program(config_for("aws", overrides), list(SECRETS), stack="aws-test",
                       deployed=Deployed(outputs=dict(previous)))


def test_a_bucket_of_an_earlier_release_is_known_by_its_name(stack: StackRunner) -> None:
    """An `up` before this release exported the bucket's name alone: recording off is refused all the same, and
    whether it had holds is unknown: a destroy that would empty it is refused until an `up` records them."""
    earlier = earlier_release(stack("aws", **HELD))
    with pytest.raises(SettingsError, match="recordingRemoveStore"):
        stack("aws", previous=earlier)
    with pytest.raises(SettingsError) as refused:
        stack("aws", **ON, recordingDeleteOnDestroy="true", previous=earlier)
    message = str(refused.value)
    assert "did not record whether its recording bucket" in message and "has had holds" in message
    assert "pulumi config set recordingDeleteOnDestroy false" in message and "\n" not in message


def test_a_locked_bucket_of_an_earlier_release_is_known_held_from_its_state(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket an earlier release made with Object Lock keeps `object_lock_enabled` true in its state (never
    compared): the first `up` of this release records it held whatever `recordingHold` says and keeps the grant
    that lifts the holds; the next `up` refuses holds off and a destroy that would empty it."""
    earlier = earlier_release(stack("aws", **HELD))
    with_state(monkeypatch, BUCKET, objectLockEnabled=True)
    first = up(ON, earlier)
    assert component_outputs(first, "aws")[OUTPUT] == {"hold": False, "held": True, "deleteOnDestroy": False}
    (objects,) = [s for s in policy_statements(first) if s["Sid"] == "RecordingObjects"]
    assert {"s3:PutObjectLegalHold", "s3:GetObjectLegalHold"} <= set(objects["Action"])
    # Known now: holds off, a destroy that would empty it with them, are refused.
    for overrides in (ON, {**ON, "recordingDeleteOnDestroy": "true"}):
        with pytest.raises(SettingsError, match="was made with holds"):
            up(overrides, component_outputs(first, "aws"))


def test_an_unlocked_bucket_of_an_earlier_release_is_recorded_without_holds(stack: StackRunner) -> None:
    earlier = earlier_release(stack("aws", **ON))
    first = stack("aws", **ON, previous=earlier)
    assert component_outputs(first, "aws")[OUTPUT]["held"] is False
    assert stack("aws", **ON, recordingDeleteOnDestroy="true", previous=component_outputs(first, "aws")).of_type(
        BUCKET)


def test_the_store_output_says_what_was_applied(stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """An `up --target` leaving the lock out, or a lock the provider did not apply, records no holds."""
    first = component_outputs(stack("aws", **ON), "aws")
    with_state(monkeypatch, LOCK, objectLockEnabled="")
    unlocked = up(HELD, first)
    assert component_outputs(unlocked, "aws")[OUTPUT] == {"hold": False, "held": False, "deleteOnDestroy": False}


def test_holds_turned_on_roll_the_dispatcher_out_after_the_lock(stack: StackRunner) -> None:
    """The dispatcher learns at start-up whether the bucket is versioned: holds turned on must give it a new
    task definition, made after the lock, and its holds grant must wait for the lock too."""
    first = stack("aws", **ON)
    held = after(stack, first, **HELD)
    lock = one(held, LOCK)
    assert container(held, "-dispatcher") != container(first, "-dispatcher")
    assert container(held, "-dispatcher")["dockerLabels"] == {"voicefleet.recording-object-lock": "Enabled"}
    (task,) = [r for r in held.of_type(TASK) if r.inputs["family"].endswith("-dispatcher")]
    assert lock.urn in task.dependencies
    (policy,) = [r for r in held.of_type(POLICY) if r.name.endswith("-recordings")]
    assert lock.urn in policy.dependencies
    # Unchanged holds: no new revision.
    assert changed_names(held, after(stack, held, **HELD)) == []


def test_recording_remove_store_is_refused_on_a_stack_that_records(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as refused:
        stack("aws", **ON, recordingRemoveStore="true")
    assert "pulumi config rm recordingRemoveStore" in str(refused.value)


def test_a_refused_up_registers_nothing_in_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider waits for the check: with `up --skip-preview` too, nothing is changed before the refusal."""
    config = config_for("aws", ON)
    deployed = Deployed()
    deployed.record(run_program(config, list(SECRETS), stack="aws-test", deployed=deployed))
    monitors = watched_monitors(monkeypatch)
    with pytest.raises(SettingsError):
        run_program(config_for("aws", {}), list(SECRETS), stack="aws-test", deployed=deployed)
    (monitor,) = monitors
    assert [r.type for r in monitor.registrations if r.type.startswith("aws:")] == []
