"""The program refuses, from its own last outputs, what would delete running bots or race the admission policy.

Each `up` here is the program's own run after the one before it (its outputs read back through the
StackReference to itself, as `pulumi up` does), whatever tool starts it: a plain `pulumi config set`
and `up` meets the same refusal as the plan.
"""

from __future__ import annotations

import gc

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Deployed, Run, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.helpers import changed_names, watched_monitors
from tests.infra.k8s.conftest import ALL_SECRETS

SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}
NEW_IMAGE = "registry.example.com/bot@sha256:" + "c" * 64


def up(deployed: Deployed, **overrides: str) -> Run:
    run = run_program(config_for("k8s", overrides, ALL_SECRETS), list(ALL_SECRETS), stack="k8s-test",
                      deployed=deployed)
    deployed.record(run)
    return run


@pytest.mark.parametrize(("key", "was"), [("k8sBotNamespace", "voicefleet-bots"),
                                          ("k8sDispatcherNamespace", "voicefleet")])
def test_a_new_namespace_name_is_refused_after_an_up_with_the_way_out(key: str, was: str) -> None:
    deployed = Deployed()
    up(deployed)
    with pytest.raises(SettingsError) as refused:
        up(deployed, **{key: "voicefleet-moved"})
    message = str(refused.value)
    assert f"{key} is 'voicefleet-moved', but this stack's last `up` made {was!r}" in message
    assert f"pulumi config set {key} {was}" in message
    assert "drain true" in message and "protect: true" in message and "Moving to other namespaces" in message


def test_a_refused_up_registers_nothing_in_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider waits for the check: with `up --skip-preview` too, the new namespace is never created."""
    deployed = Deployed()
    up(deployed)
    monitors = watched_monitors(monkeypatch)
    with pytest.raises(SettingsError):
        up(deployed, k8sBotNamespace="voicefleet-moved")
    (monitor,) = monitors
    assert [r.type for r in monitor.registrations if r.type.startswith("kubernetes:")] == []


def test_a_first_up_and_an_unchanged_one_are_not_refused() -> None:
    deployed = Deployed()
    first = up(deployed, k8sBotNamespace="team-bots")
    assert changed_names(first, up(deployed, k8sBotNamespace="team-bots")) == []


def test_a_drained_stack_may_move_its_namespaces() -> None:
    """`drain: true` scaled the dispatcher to zero: nothing launches bots, and none is left running."""
    deployed = Deployed()
    up(deployed)
    up(deployed, drain="true")
    moved = up(deployed, drain="true", k8sBotNamespace="voicefleet-moved", k8sDispatcherNamespace="vf-moved")
    names = {r.name: r for r in moved.of_type("kubernetes:core/v1:Namespace")}
    assert sorted(r.inputs["metadata"]["name"] for r in names.values()) == ["vf-moved", "voicefleet-moved"]
    up(deployed, k8sBotNamespace="voicefleet-moved", k8sDispatcherNamespace="vf-moved")  # back in service
    with pytest.raises(SettingsError, match="k8sBotNamespace"):  # and once moved, that is the name kept
        up(deployed, k8sBotNamespace="voicefleet-bots", k8sDispatcherNamespace="vf-moved")


MODEL = {"k8sModelImage": "registry.example.com/team/moshi-batched@sha256:" + "e" * 64}


def test_a_running_models_namespace_move_is_refused_and_stopped_first_it_goes_through() -> None:
    """The new Deployment (its name kept, in another namespace) is created before the old goes, its pod
    waiting for the GPU the old one holds (pulumi-kubernetes provider.go Diff: no delete-first for a
    namespace change); the old one is deleted only after an `up` that succeeds (pulumi/pulumi
    deployment_executor.go): every `up` would fail at the create timeout."""
    deployed = Deployed()
    up(deployed, **MODEL)
    with pytest.raises(SettingsError) as refused:
        up(deployed, **MODEL, k8sModelNamespace="voicefleet-gpu")
    message = str(refused.value)
    assert "k8sModelNamespace is 'voicefleet-gpu', but this stack's last `up` runs the model service in " \
           "'voicefleet-model'" in message
    assert "pulumi config set k8sModelNamespace voicefleet-model" in message
    assert "pulumi config set k8sModelReplicas 0" in message
    up(deployed, **MODEL, k8sModelReplicas="0")  # stopped: its GPU freed
    moved = up(deployed, **MODEL, k8sModelNamespace="voicefleet-gpu")
    (deployment,) = [r for r in moved.of_type("kubernetes:apps/v1:Deployment") if r.name.endswith("-model")]
    assert unwrap(deployment.inputs)["metadata"]["namespace"] == "voicefleet-gpu"
    up(deployed, k8sBotNamespace="voicefleet-bots")  # the model taken out: nothing to move


def test_a_new_deployer_with_a_new_bot_template_is_refused_and_each_alone_goes_through() -> None:
    deployed = Deployed()
    up(deployed, **SANDBOX)
    with pytest.raises(SettingsError) as refused:
        up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sBotImage=NEW_IMAGE)
    message = str(refused.value)
    assert "k8sDeployer changes from 'ci@example.com' to 'new-ci@example.com'" in message
    assert "Change k8sDeployer in an `up` of its own" in message
    with pytest.raises(SettingsError, match="Change k8sDeployer in an `up` of its own"):  # the template's egress
        up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sDnsAddresses='["169.254.20.10"]')
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"})  # the deployer alone
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sBotImage=NEW_IMAGE)  # then the template


@pytest.mark.parametrize(("was", "now"), [("istio-ambient", "cilium"), ("cilium", "istio-ambient")])
def test_a_new_deployer_with_another_mesh_is_refused_as_the_templates_egress_changes(was: str, now: str) -> None:
    """The templates' networkPolicy carries the mesh's tunnel port under Istio ambient: a new mesh is a new
    template, the deployer's update like any other."""
    deployed = Deployed()
    up(deployed, **SANDBOX, k8sChannelTls=was)
    with pytest.raises(SettingsError, match="Change k8sDeployer in an `up` of its own"):
        up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sChannelTls=now)
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sChannelTls=was)
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, k8sChannelTls=now)


@pytest.mark.parametrize("change", [{"environment": "staging"}, {"releasesKept": "2"}])
def test_a_new_deployer_with_a_metadata_only_change_of_the_pools_is_refused(change: dict[str, str]) -> None:
    """A label the pools carry (the environment), or which pools there are and which is retiring (the release
    settings), is the deployer's update as much as a new image: the old policy would refuse it too."""
    deployed = Deployed()
    up(deployed, **SANDBOX)
    with pytest.raises(SettingsError, match="Change k8sDeployer in an `up` of its own"):
        up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, **change)
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"})
    up(deployed, **{**SANDBOX, "k8sDeployer": "new-ci@example.com"}, **change)


def test_dropping_the_install_is_refused_and_keeping_it_or_adopting_from_the_start_goes_through() -> None:
    """From `install` to `adopt`, the `up` would delete the installed release, its CRDs first, and with them
    every Sandbox, claim, template and pool in the cluster, the stack's own too (still in its state)."""
    deployed = Deployed()
    up(deployed, **SANDBOX, k8sAgentSandbox="install")
    with pytest.raises(SettingsError) as refused:
        up(deployed, **SANDBOX, k8sAgentSandbox="adopt")
    message = str(refused.value)
    assert "\n" not in message and "pulumi config set k8sAgentSandbox install" in message
    up(deployed, **SANDBOX, k8sAgentSandbox="install")  # kept: goes through
    adopted = Deployed()
    up(adopted, **SANDBOX)
    up(adopted, **SANDBOX, k8sAgentSandbox="install")  # adopt then install: nothing the stack made is deleted


def test_a_refusal_is_reported_once_not_once_per_resource_waiting_on_it(caplog: pytest.LogCaptureFixture) -> None:
    """Every registration waits on the check and fails with it: asyncio would print each such future it
    collects as "Future exception was never retrieved", a traceback per resource after the refusal."""
    deployed = Deployed()
    up(deployed)
    with pytest.raises(SettingsError):
        up(deployed, k8sBotNamespace="voicefleet-moved")
    up(deployed)  # set back: the runtime's state of the refused `up` is let go (in `pulumi up`, its process ends)
    gc.collect()  # where asyncio reports each failed future nobody awaited
    assert [record.getMessage() for record in caplog.records if "never retrieved" in record.getMessage()] == []
