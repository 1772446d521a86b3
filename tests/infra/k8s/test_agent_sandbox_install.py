"""agent-sandbox itself under the mocks: `k8sAgentSandbox: install` applies the pinned release's manifest,
`adopt` (the default) reads the cluster's CRDs and refuses one that does not serve v1beta1; either way the
admission policy and agent-sandbox come before every template and pool, and those before the dispatcher, so
a destroy (the reverse order) deletes the install last."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from stacks.config.reader import SettingsError
from stacks.k8s.agent_sandbox import CRDS, MANIFEST_URL, VERSION
from stacks.tools.mocks import Deployed, Registration, Run, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.helpers import changed_names, watched_monitors
from tests.infra.k8s.conftest import ALL_SECRETS

SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}
INSTALL = "kubernetes:yaml/v2:ConfigFile"
TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"
POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def up(deployed: Deployed | None = None, **overrides: str) -> Run:
    deployed = Deployed() if deployed is None else deployed
    run = run_program(config_for("k8s", {**SANDBOX, **overrides}, ALL_SECRETS), list(ALL_SECRETS),
                      stack="k8s-test", deployed=deployed)
    deployed.record(run)
    return run


def before(run: Run, first: Registration, then: Iterable[Registration]) -> None:
    """Each of `then` waits for `first` (a direct dependency): created after it, deleted before it."""
    for reg in then:
        assert first.urn in reg.dependencies, (reg.name, first.name)


def test_install_applies_the_pinned_releases_manifest_before_every_template_and_pool() -> None:
    run = up(k8sAgentSandbox="install")
    release = run.one(INSTALL)
    assert unwrap(release.inputs)["file"] == MANIFEST_URL
    assert f"/releases/download/{VERSION}/sandbox-with-extensions.yaml" in MANIFEST_URL
    made = [*run.of_type(TEMPLATE), *run.of_type(POOL)]
    assert len(made) == 4  # the default pool and one release's, each a template and a pool
    before(run, release, made)


def test_a_new_pinned_version_updates_the_install_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every object of the install takes its name (and URN) from the ConfigFile's: named after the version,
    a new one would create the new release's objects beside the old ones, which exist (AlreadyExists: the
    provider never adopts an object), then delete the old ones, the CRDs with every Sandbox in the cluster."""
    from stacks.k8s import agent_sandbox

    deployed = Deployed()
    first = up(deployed, k8sAgentSandbox="install").one(INSTALL)
    monkeypatch.setattr(agent_sandbox, "VERSION", "v0.5.7")
    monkeypatch.setattr(agent_sandbox, "MANIFEST_URL", MANIFEST_URL.replace(VERSION, "v0.5.7"))
    second = up(deployed, k8sAgentSandbox="install").one(INSTALL)
    assert second.urn == first.urn
    assert unwrap(second.inputs)["file"].endswith("/v0.5.7/sandbox-with-extensions.yaml")


@pytest.mark.parametrize("choice", ["install", "adopt"])
def test_the_admission_policy_comes_before_every_template_and_pool_and_those_before_the_dispatcher(
        choice: str) -> None:
    run = up(k8sAgentSandbox=choice)
    made = [*run.of_type(TEMPLATE), *run.of_type(POOL)]
    before(run, run.one(POLICY), made)
    before(run, run.one(BINDING), made)
    deployment = run.one(DEPLOYMENT)
    assert {reg.urn for reg in run.of_type(POOL)} <= set(deployment.dependencies)
    # A destroy runs this graph backwards: the dispatcher (whose claims need the CRDs) first, then the pools and
    # templates, then the policy and the install (pulumi/pulumi#7788 orders a remote component's children too).


def test_adopt_is_the_default_and_installs_nothing() -> None:
    run = up()
    assert run.of_type(INSTALL) == []
    assert len(run.of_type(POOL)) == 2


@pytest.mark.parametrize("choice", ["install", "adopt"])
def test_a_second_up_changes_nothing(choice: str) -> None:
    deployed = Deployed()
    first = up(deployed, k8sAgentSandbox=choice)
    assert changed_names(first, up(deployed, k8sAgentSandbox=choice)) == []


def test_adopt_refuses_a_cluster_serving_only_v1alpha1_in_one_line_and_makes_no_template_or_pool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monitors = watched_monitors(monkeypatch)
    with pytest.raises(SettingsError) as refused:
        up(Deployed(crds=dict.fromkeys(CRDS, ("v1alpha1",))))
    message = str(refused.value)
    assert "\n" not in message
    assert "serves v1alpha1, not v1beta1" in message and "pulumi config set k8sAgentSandbox install" in message
    (monitor,) = monitors
    assert not [r for r in monitor.registrations if r.type in (TEMPLATE, POOL)]


def test_adopt_accepts_v1_0_which_serves_v1beta1_alone() -> None:
    run = up(Deployed(crds=dict.fromkeys(CRDS, ("v1beta1",))))
    assert len(run.of_type(POOL)) == 2


def test_adopt_fails_when_a_crd_is_missing_naming_it() -> None:
    crds = dict.fromkeys(CRDS[:-1], ("v1beta1",))
    with pytest.raises(Exception, match=CRDS[-1].replace(".", r"\.")):
        up(Deployed(crds=crds))


def test_install_is_only_for_the_agent_sandbox_mode_and_its_controller_is_the_releases() -> None:
    with pytest.raises(SettingsError, match="k8sMode is pods"):
        up(k8sMode="pods", k8sAgentSandbox="install")
    with pytest.raises(SettingsError, match="pulumi config rm k8sSandboxController"):
        up(k8sAgentSandbox="install", k8sSandboxController="other/controller")


def test_a_misspelt_choice_or_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="must be one of adopt, install"):
        up(k8sAgentSandbox="instal")
    with pytest.raises(SettingsError, match="did you mean k8sAgentSandbox"):
        up(k8sAgentSandbx="install")
