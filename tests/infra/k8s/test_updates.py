"""A second `up` with the same inputs changes nothing; a config change touches only what it should.

Each run here is the program's own (stacks.tools.mocks.run_program), never a cached copy of another.
"""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.helpers import changed_names
from tests.infra.k8s.conftest import ALL_SECRETS, dispatcher_secret

SECRET_KEYS = list(ALL_SECRETS)


def up(secrets: dict[str, str] | None = None, **overrides: str) -> Run:
    given = ALL_SECRETS if secrets is None else secrets
    return run_program(config_for("k8s", overrides, given), list(given), stack="k8s-test")


def short(changed: list[tuple[str, str]]) -> list[str]:
    return sorted(typ.rsplit(":", 1)[-1] for typ, _ in changed)


def test_a_second_up_with_the_same_inputs_registers_the_same_resources_unchanged() -> None:
    first, second = up(), up()
    assert sorted(r.urn for r in first.registrations) == sorted(r.urn for r in second.registrations)
    assert changed_names(first, second) == []


@pytest.mark.parametrize(("change", "touched"), [
    # The provider's K8S_BOT_MEMORY, the cap, and the memory the bots' policy admits.
    ({"k8sBotMemory": "2Gi"}, ["Deployment", "ResourceQuota", "ValidatingAdmissionPolicy"]),
    ({"maxConcurrentSessions": "20"}, ["Deployment", "ResourceQuota"]),
    ({"k8sIngressClass": "traefik"}, ["Ingress"]),
    ({"k8sIngressNamespace": "traefik"}, ["NetworkPolicy"]),
    ({"k8sIngressSources": '["10.20.0.0/16"]'}, ["NetworkPolicy"]),
    # Its grace and MAX_SESSION_SECONDS, and the longest deadline the bots' policy admits.
    ({"maxSessionSeconds": "900"}, ["Deployment", "ValidatingAdmissionPolicy"]),
    ({"k8sDispatcherReplicas": "3"}, ["Deployment"]),
])
def test_a_config_change_touches_only_what_it_should(change: dict[str, str], touched: list[str]) -> None:
    assert short(changed_names(up(), up(**change))) == touched


def test_a_changed_secret_is_a_new_secret_the_dispatcher_rolls_onto() -> None:
    before = up()
    after = up(secrets={**ALL_SECRETS, "voicefleet:dailyApiKey": "SENTINEL-daily-api-key-rotated"})
    assert short(changed_names(before, after)) == ["Deployment", "Secret"]
    names = [unwrap(dispatcher_secret(run).outputs)["metadata"]["name"] for run in (before, after)]
    assert names[0] != names[1]  # an auto-named Secret is replaced under a new name (stacks/k8s/secrets.py)


SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}


def test_an_agent_sandbox_stacks_second_up_changes_nothing_and_a_new_bot_image_changes_its_template() -> None:
    first = up(**SANDBOX)
    assert changed_names(first, up(**SANDBOX)) == []
    # A new image (a first `up` of it): the dispatcher's BOT_IMAGE and RELEASES, the default template (its
    # pool, `Recreate`, retires its warm pods); the release's own template and pool are another release's
    # (tests/infra/k8s/test_release_pools.py follows one `up` after another).
    image = "registry.example.com/bot@sha256:" + "c" * 64
    assert short(changed_in_both(first, up(**SANDBOX, k8sBotImage=image))) == ["Deployment", "SandboxTemplate"]


def changed_in_both(before: Run, after: Run) -> list[tuple[str, str]]:
    """changed_names over the resources both runs register."""
    old = {r.urn: unwrap(r.inputs) for r in before.registrations}
    return sorted((r.type, r.name) for r in after.registrations if r.urn in old and unwrap(r.inputs) != old[r.urn])


IN_CLUSTER = {**{k: v for k, v in ALL_SECRETS.items() if k != "voicefleet:k8sStoreUrl"},
              "voicefleet:storePassword": "SENTINEL-store-password-0123456789abcd"}


def test_an_in_cluster_stores_second_up_changes_nothing_and_a_new_password_rolls_the_store_and_the_dispatcher() -> None:
    first = up(secrets=IN_CLUSTER, k8sStore="in-cluster")
    assert changed_names(first, up(secrets=IN_CLUSTER, k8sStore="in-cluster")) == []
    rotated = up(secrets={**IN_CLUSTER, "voicefleet:storePassword": "SENTINEL-store-password-rotated-01234"},
                 k8sStore="in-cluster")
    # Both Secrets are new (the dispatcher's REDIS_PASSWORD, the store's valkey.conf), so both pods roll.
    assert short(changed_names(first, rotated)) == ["Deployment", "Secret", "Secret", "StatefulSet"]
    # A bigger volume changes the claim template alone (a replacement the plan refuses:
    # tests/infra/tools/preflight/test_replacements.py).
    assert short(changed_names(first, up(secrets=IN_CLUSTER, k8sStore="in-cluster", k8sStoreStorage="2Gi"))) == [
        "StatefulSet"]
