"""The recording store the stack's last `up` left, read back, and the changes the program refuses against it.

The program sees only this `up`'s configuration; the store, and what it holds, is what earlier ones
made. The stack's outputs say that (read back through a StackReference to the stack itself, as
stacks/k8s/last_outputs.py reads its namespaces), and these changes are refused whatever tool runs the `up`:

- `recording: off` while the last `up` made a store: the `up` would take the store out of the stack,
  deleting it with every recording when `recordingDeleteOnDestroy` was true, else leaving it behind.
  `recordingRemoveStore: true` confirms it;
- `recordingHold` off on AWS or Azure after an `up` with it: S3 never turns Object Lock off (nor
  versioning under it) and Azure never turns an account's version-level immutability off, so the
  holds placed stay, and the rules and grants the store needs with them must stay too;
- `recordingHold` on for an Azure account made without it: Azure sets version-level immutability
  only as an account is made (the account's name is fixed: there is no new one to make beside it);
- `recordingDeleteOnDestroy` on a store that ever had holds: a destroy would delete held recordings
  (S3's emptying lifts each legal hold first) or stop halfway (Cloud Storage refuses to delete a held
  object). The same with holds on now is refused as the settings are read (stacks/config/recording.py).

An `up` of a release before this one left the store's name without `recordingStore`: whether that store
had holds is unknown, and `recordingDeleteOnDestroy` is refused until an `up` without it records it. That
`up` takes `held` from what the cloud holds (`RecordingHolds`: the S3 bucket's Object Lock, the Azure
account's immutability), not from the configuration alone. The cloud's provider waits for these checks,
so a refused `up` changes nothing in the cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from stacks.config.reader import SettingsError
from stacks.config.recording import HELD_STORE_DESTROY, REMOVE_STORE, RecordingSettings
from stacks.config.refused import reported_once
from stacks.shared.releases import own_stack

OUTPUT = "recordingStore"  # {"hold", "held", "deleteOnDestroy"}: what the next `up` reads back
NAMES = ("recordingBucket", "recordingAccount")  # the store's name, as the clouds' outputs give it
READ = (OUTPUT, *NAMES)
DOCS = 'docs/recording.md, "Changing the recording store"'
HOLD_FOR_GOOD = {
    "aws": "S3 never turns a bucket's Object Lock off, nor its versioning: the holds placed stay, and the dispatcher "
           "would lose the grant that lifts them",
    "azure": "Azure never turns an account's version-level immutability off: the holds placed stay, and the account "
             "stays versioned for good",
}


@dataclass(frozen=True)
class LastStore:
    """The last `up`'s recording store (name None: it made none). None elsewhere: that `up` did not say."""

    name: str | None = None
    hold: bool | None = None  # recordingHold at that `up`
    held: bool | None = None  # recordingHold at that `up` or any earlier one of the same store
    delete_on_destroy: bool | None = None

    @property
    def held_unknown(self) -> bool:
        """A store an earlier release made: its name said, its holds not."""
        return self.name is not None and self.held is None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> LastStore:
        names = [value for key in NAMES if isinstance(value := values.get(key), str) and value]
        said = values.get(OUTPUT)
        said = said if isinstance(said, Mapping) else {}

        def flag(key: str) -> bool | None:
            value = said.get(key)
            return value if isinstance(value, bool) else None

        return cls(name=names[0] if names else None, hold=flag("hold"), held=flag("held"),
                   delete_on_destroy=flag("deleteOnDestroy"))


def read(name: str) -> pulumi.Output[LastStore]:
    reference = pulumi.StackReference(f"{name}-recording-last-up", stack_name=own_stack())
    return pulumi.Output.all(*(reference.get_output(key) for key in READ)).apply(
        lambda values: LastStore.of(dict(zip(READ, values, strict=True))))


def _noun(cloud: str) -> str:
    return "account" if cloud == "azure" else "bucket"


def refuse_removal(last: LastStore, cloud: str, recording: RecordingSettings | None, confirmed: bool) -> None:
    if recording is not None or last.name is None or confirmed:
        return
    fate = {True: "delete it with every recording in it (recordingDeleteOnDestroy was true)",
            False: "leave it behind, recordings and all, outside the stack",
            None: "delete it with every recording in it if recordingDeleteOnDestroy was true, else leave it behind "
                  "outside the stack"}[last.delete_on_destroy]
    raise SettingsError(
        f"Invalid stack configuration: recording is off, but this stack's last `up` made the recording "
        f"{_noun(cloud)} {last.name!r}: this `up` would take it out of the stack and {fate}. Set it back "
        f"(`pulumi config set recording on`), or confirm (`pulumi config set {REMOVE_STORE} true`) ({DOCS})")


def refuse_hold_change(last: LastStore, cloud: str, recording: RecordingSettings | None) -> None:
    if recording is None or last.name is None:
        return
    if not recording.hold and last.held is True and cloud in HOLD_FOR_GOOD:
        raise SettingsError(
            f"Invalid stack configuration: recordingHold is false, but this stack's recording {_noun(cloud)} "
            f"{last.name!r} was made with holds: {HOLD_FOR_GOOD[cloud]}. Set it back (`pulumi config set "
            f"recordingHold true`) ({DOCS})")
    if recording.hold and last.held is False and cloud == "azure":
        raise SettingsError(
            f"Invalid stack configuration: recordingHold is true, but this stack's recording account {last.name!r} "
            "was made without it: Azure sets version-level immutability only as an account is made, and refuses "
            "it on this one (whose fixed name leaves no room for a new one). Set it back (`pulumi config set "
            f"recordingHold false`); holds on Azure need an account made with them ({DOCS})")


def refuse_held_destroy(last: LastStore, cloud: str, recording: RecordingSettings | None) -> None:
    if recording is None or not recording.delete_on_destroy or not (last.held is True or last.held_unknown):
        return
    if last.held is None:
        raise SettingsError(
            f"Invalid stack configuration: recordingDeleteOnDestroy is true, but this stack's last `up` (by an "
            f"earlier release) did not record whether its recording {_noun(cloud)} {last.name!r} has had holds, and "
            f"a destroy of a store with holds would delete held recordings or stop halfway. Run one `up` with "
            f"`pulumi config set recordingDeleteOnDestroy false` first: it records the store's holds, and the next "
            f"`up` takes recordingDeleteOnDestroy if the store never had any ({DOCS})")
    raise SettingsError(
        f"Invalid stack configuration: recordingDeleteOnDestroy is true, but this stack's recording "
        f"{_noun(cloud)} {last.name!r} has had holds: {HELD_STORE_DESTROY}")


def checked(name: str, cloud: str, recording: RecordingSettings | None, confirmed: bool) -> pulumi.Output[LastStore]:
    """The last `up`'s store, once the changes it refuses are ruled out (a failed check fails the program)."""
    def check(found: LastStore) -> LastStore:
        try:
            refuse_removal(found, cloud, recording, confirmed)
            refuse_hold_change(found, cloud, recording)
            refuse_held_destroy(found, cloud, recording)
        except SettingsError as refused:
            reported_once(refused)
            raise
        return found

    return read(name).apply(check)


@dataclass(frozen=True)
class RecordingHolds:
    """What the cloud says of the store's holds, read from the applied resources (never the configuration
    alone: an `up --target` or a failed create applies less than was asked). `hold`: on now; `held`: on now
    or at some earlier `up`, as far as the cloud's state says (an S3 bucket an earlier release made with
    Object Lock keeps `object_lock_enabled` true in its state)."""

    hold: pulumi.Input[bool]
    held: pulumi.Input[bool]


def store_output(recording: RecordingSettings, last: pulumi.Output[LastStore],
                 holds: RecordingHolds) -> pulumi.Output[dict[str, bool]]:
    """What the next `up` reads back: this one's holds, whether the store ever had them, its destroy."""
    return pulumi.Output.all(last, holds.hold, holds.held).apply(
        lambda values: {"hold": values[1] is True,
                        "held": values[1] is True or values[2] is True or values[0].held is True,
                        "deleteOnDestroy": recording.delete_on_destroy})
