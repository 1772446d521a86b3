"""The GCP recording bucket across `up`s: each run here is the program's next `up` after the one before it,
its last outputs read back (as `pulumi up` does), whatever tool starts it.

A bucket that has had holds is never deleted by a destroy (Cloud Storage refuses to delete a held object:
the destroy would stop halfway, the bucket's recordings partly gone), and `recording: off` taking the
bucket out of the stack needs confirming.
"""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import Run
from tests.infra.conftest import StackRunner
from tests.infra.helpers import component_outputs

BUCKET = "gcp:storage/bucket:Bucket"
ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
ON = {"recording": "on"}
HELD = {**ON, "recordingHold": "true"}
OUTPUT = "recordingStore"  # what the next `up` reads back (stacks/shared/recording_last_up.py)


def test_holds_with_delete_on_destroy_are_refused_in_one_line(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as refused:
        stack("gcp", **HELD, recordingDeleteOnDestroy="true")
    message = str(refused.value)
    assert "voicefleet:recordingDeleteOnDestroy is true with recordingHold" in message
    assert "Cloud Storage and Azure refuse to delete a held object" in message and "\n" not in message


def test_a_bucket_that_had_holds_is_never_deleted_by_a_destroy(stack: StackRunner) -> None:
    """Holds turned off leave the temporary holds already placed: the bucket remembers it had them."""
    held = component_outputs(stack("gcp", **HELD), "gcp")
    released = stack("gcp", **ON, previous=held)
    assert component_outputs(released, "gcp")[OUTPUT] == {"hold": False, "held": True, "deleteOnDestroy": False}
    with pytest.raises(SettingsError) as refused:
        stack("gcp", **ON, recordingDeleteOnDestroy="true", previous=component_outputs(released, "gcp"))
    message = str(refused.value)
    assert "recordingDeleteOnDestroy is true, but this stack's recording bucket 'vf-test-gcp-test-rec' has had holds" \
        in message
    assert "pulumi config set recordingDeleteOnDestroy false" in message and "\n" not in message
    # A bucket that never had holds may be deleted by a destroy, as before.
    never = component_outputs(stack("gcp", **ON), "gcp")
    assert stack("gcp", **ON, recordingDeleteOnDestroy="true", previous=never).of_type(BUCKET)


def test_recording_off_after_a_bucket_is_refused_until_confirmed(stack: StackRunner) -> None:
    first = component_outputs(stack("gcp", **ON), "gcp")
    with pytest.raises(SettingsError) as refused:
        stack("gcp", previous=first)
    message = str(refused.value)
    assert "recording is off, but this stack's last `up` made the recording bucket 'vf-test-gcp-test-rec'" in message
    assert "leave it behind, recordings and all, outside the stack" in message
    assert "pulumi config set recordingRemoveStore true" in message
    assert stack("gcp", previous=first, recordingRemoveStore="true").of_type(BUCKET) == []


def recorder_permissions(run: Run) -> list[str]:
    (recorder,) = [r for r in run.of_type(ROLE) if r.name.endswith("-recorder")]
    return list(recorder.inputs["permissions"])


def test_holds_turned_off_keep_the_permission_that_lifts_them(stack: StackRunner) -> None:
    """The temporary holds placed stay when holds are turned off: the dispatcher keeps storage.objects.update,
    which lifts them, as long as the bucket has had holds; a bucket that never had any does without it."""
    held = component_outputs(stack("gcp", **HELD), "gcp")
    released = stack("gcp", **ON, previous=held)
    assert "storage.objects.update" in recorder_permissions(released)
    again = stack("gcp", **ON, previous=component_outputs(released, "gcp"))
    assert "storage.objects.update" in recorder_permissions(again)
    never = stack("gcp", **ON, previous=component_outputs(stack("gcp", **ON), "gcp"))
    assert "storage.objects.update" not in recorder_permissions(never)


def test_a_bucket_of_an_earlier_release_is_refused_a_destroy_until_its_holds_are_known(stack: StackRunner) -> None:
    """An `up` before this release exported the bucket's name alone: whether it had holds is unknown."""
    earlier = {k: v for k, v in component_outputs(stack("gcp", **ON), "gcp").items() if k != OUTPUT}
    with pytest.raises(SettingsError) as refused:
        stack("gcp", **ON, recordingDeleteOnDestroy="true", previous=earlier)
    message = str(refused.value)
    assert "did not record whether its recording bucket 'vf-test-gcp-test-rec' has had holds" in message
    assert "pulumi config set recordingDeleteOnDestroy false" in message and "\n" not in message
    recorded = component_outputs(stack("gcp", **ON, previous=earlier), "gcp")
    assert recorded[OUTPUT]["held"] is False
    assert stack("gcp", **ON, recordingDeleteOnDestroy="true", previous=recorded).of_type(BUCKET)
