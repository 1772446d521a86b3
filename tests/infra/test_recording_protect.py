"""`protect` (derived by `profile: prod`) beside `recordingDeleteOnDestroy`: refused on every cloud that makes
the store. Pulumi refuses a protected resource's delete only when that step runs (pulumi/pulumi
pkg/resource/deploy/step.go, DeleteStep.Apply), and the store depends on no protected resource, so a
destroy stopping at a protected registry may already have emptied it (`force_destroy`)."""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from tests.infra.conftest import StackRunner

ON = {"recording": "on", "recordingRules": "key:acme days=30", "recordingDeleteOnDestroy": "true"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize("protected", [{"protect": "true"}, {"profile": "prod"}])
def test_delete_on_destroy_beside_protect_is_refused_in_one_line(
        stack: StackRunner, cloud: str, protected: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as refused:
        stack(cloud, **ON, **protected)
    message = str(refused.value)
    assert message.startswith("Invalid stack configuration: voicefleet:recordingDeleteOnDestroy is true with protect")
    assert "pulumi config set recordingDeleteOnDestroy false" in message and "protect false" in message
    assert "\n" not in message


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_either_alone_goes_through(stack: StackRunner, cloud: str) -> None:
    assert stack(cloud, **ON).registrations
    assert stack(cloud, **{**ON, "recordingDeleteOnDestroy": "false"}, protect="true").registrations
