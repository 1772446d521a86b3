"""GCP: the admin surface's key reaches the dispatcher only by reference, and no bot may read it.

DISPATCHER_ADMIN_KEYS is a Secret Manager secret the Cloud Run service references at the version
the stack wrote (`secret_key_ref`), with secretAccessor on that one secret for the dispatcher's
account alone: neither the bot VMs' account (botRuntime gce) nor the bot jobs' (cloudrun) gets it,
and nothing grants a Secret Manager role on the whole project.
"""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import ADMIN_KEY, CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import changed_names, component_outputs, holding

MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_ID = "voicefleet-gcp-test-dispatcher-admin-keys"
BOT_KEYS = {"deepgramApiKey": "SENTINEL-dg", "cartesiaApiKey": "SENTINEL-ca", "openaiApiKey": "SENTINEL-oa"}


def full(stack: StackRunner, runtime: str, secrets: dict[str, str] | None = None) -> Run:
    """A stack whose bots read secrets of their own (their provider keys, the channel's)."""
    return stack("gcp", secrets={**(secrets or SECRETS), **CHANNEL_SECRETS}, botRuntime=runtime, **CHANNEL["gcp"],
                 **BOT_KEYS)


def readers(run: Run, secret_id: str) -> set[str]:
    """The members granted access to one secret."""
    return {str(unwrap(m.inputs)["member"]) for m in run.of_type(MEMBER)
            if str(unwrap(m.inputs)["secretId"]).endswith(f"/{secret_id}")}


@pytest.mark.parametrize("runtime", ["gce", "cloudrun"])
def test_the_dispatcher_alone_reads_the_admin_key_by_reference(stack: StackRunner, runtime: str) -> None:
    run = full(stack, runtime)
    outputs = unwrap(component_outputs(run, "gcp"))
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (container,) = unwrap(service.inputs)["template"]["containers"]
    envs = {e["name"]: e for e in container["envs"]}
    assert envs["DISPATCHER_ADMIN_KEYS"] == {"name": "DISPATCHER_ADMIN_KEYS",
                                             "valueSource": {"secretKeyRef": {"secret": SECRET_ID, "version": "1"}}}
    assert readers(run, SECRET_ID) == {f"serviceAccount:{outputs['dispatcherServiceAccount']}"}
    # The bots' account reads its own secrets (so this is no empty check), never the admin key.
    bot = f"serviceAccount:{outputs['botServiceAccount']}"
    assert bot in readers(run, "voicefleet-gcp-test-deepgram-api-key")
    assert [r.name for r in holding(run, "dispatcher-admin-keys") if r.type in (
        "gcp:compute/instanceTemplate:InstanceTemplate", "gcp:cloudrunv2/job:Job")] == []
    for grant in run.of_type("gcp:projects/iAMMember:IAMMember"):
        assert "secretmanager" not in str(unwrap(grant.inputs)["role"]), grant.name
    # The value itself is written once, into its secret version.
    assert [r.type for r in holding(run, ADMIN_KEY)] == [VERSION]


@pytest.mark.parametrize("runtime", ["gce", "cloudrun"])
def test_a_second_up_changes_nothing_and_a_new_admin_key_only_its_secret_version(stack: StackRunner,
                                                                                 runtime: str) -> None:
    """Secret Manager's versions are immutable: the new value is a new version of the same secret,
    whose number the service's pinned reference follows, so Cloud Run rolls a new revision (the
    offline mocks number every first version 1, so only the version itself shows here)."""
    first = full(stack, runtime)
    assert changed_names(first, full(stack, runtime)) == []
    rotated = full(stack, runtime, {**SECRETS, "voicefleet:dispatcherAdminKeys": "SENTINEL-admin-key-rotated-77aa"})
    assert changed_names(first, rotated) == [(VERSION, "voicefleet-gcp-test-dispatcher-admin-keys")]
