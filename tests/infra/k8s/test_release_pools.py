"""agent-sandbox: a SandboxTemplate and a SandboxWarmPool per kept release, as docs/kubernetes.md "Pools per
release" has the dispatcher find them (dispatcher/machines/k8s/release_pools.py).

Each `up` is the program's own run after the one before it (its outputs read back through the
StackReference to itself, as `pulumi up` does): a first `up`, the same again, a new bot image, and
the oldest release dropped past `releasesKept`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from dispatcher.machines.k8s.pods import LABEL_RELEASE, LABEL_RETIRING
from dispatcher.machines.k8s.settings import DEFAULT_WARM_POOL
from stacks.config.releases import derived_name
from stacks.k8s.release_pools import longest_bot_seconds
from stacks.k8s.warm_pool import REPLICAS_PATH
from stacks.shared.release_builds import BUILDS_OUTPUT, STAMP
from stacks.tools.mocks import Deployed, Registration, Run, run_program, unwrap
from tests.fakes.k8s_sandbox import crd_schemas, schema_problems
from tests.infra.conftest import config_for
from tests.infra.helpers import changed_names
from tests.infra.k8s.conftest import ALL_SECRETS, container_env

TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"
POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"
SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}
MAX_SESSION_SECONDS = 900
IMAGES = ["registry.example.com/bot@sha256:" + digit * 64 for digit in "abc"]


def up(deployed: Deployed, image: str = IMAGES[0], **overrides: str) -> Run:
    given = {**SANDBOX, "maxSessionSeconds": str(MAX_SESSION_SECONDS), "k8sBotImage": image, **overrides}
    run = run_program(config_for("k8s", given, ALL_SECRETS),
                      list(ALL_SECRETS), stack="k8s-test", deployed=deployed)
    deployed.record(run)
    return run


def inputs(reg: Registration) -> dict[str, Any]:
    return dict(unwrap(reg.inputs))


def released(run: Run, typ: str) -> dict[str, dict[str, Any]]:
    """release → the object of `typ` labelled with it."""
    found = {}
    for reg in run.of_type(typ):
        body = inputs(reg)
        if (release := body["metadata"].get("labels", {}).get(LABEL_RELEASE)) is not None:
            assert release not in found, release
            found[release] = body
    return found


def builds(run: Run) -> dict[str, Any]:
    """The builds the run exports for the next `up` (stacks/shared/release_builds.py)."""
    (outputs,) = (found for found in run.completed.values() if BUILDS_OUTPUT in found)
    return dict(unwrap(outputs[BUILDS_OUTPUT]))


def listed(run: Run) -> list[dict[str, Any]]:
    return list(json.loads(container_env(run)["RELEASES"]["value"])["releases"])


def test_a_first_up_makes_the_releases_template_and_pool_by_the_contract() -> None:
    run = up(Deployed())
    release = derived_name({"*": IMAGES[0]})
    assert [r["name"] for r in listed(run)] == [release]
    template, pool = released(run, TEMPLATE)[release], released(run, POOL)[release]
    name = f"{DEFAULT_WARM_POOL}-{release}"
    assert template["metadata"]["name"] == pool["metadata"]["name"] == name
    assert pool["spec"] == {"replicas": 0, "sandboxTemplateRef": {"name": name}, "updateStrategy": {"type": "Recreate"}}
    (container,) = template["spec"]["podTemplate"]["spec"]["containers"]
    assert container["image"] == IMAGES[0]
    for body, plural in ((template, "sandboxtemplates"), (pool, "sandboxwarmpools")):
        assert schema_problems(body, crd_schemas(plural)["v1beta1"]) == ([], [])


def test_the_pools_size_is_the_dispatchers_and_the_dispatcher_waits_for_the_pools() -> None:
    run = up(Deployed())
    deployment = run.one("kubernetes:apps/v1:Deployment")
    for reg in run.of_type(POOL):
        if LABEL_RELEASE in inputs(reg)["metadata"].get("labels", {}):
            assert REPLICAS_PATH in reg.ignore_changes
            assert reg.urn in deployment.dependencies  # RELEASES is read from the pools made


def test_a_second_up_with_no_change_changes_nothing() -> None:
    deployed = Deployed()
    first = up(deployed)
    assert changed_names(first, up(deployed)) == []


def test_a_new_bot_adds_its_template_and_pool_beside_the_old_and_the_oldest_goes_past_releases_kept() -> None:
    deployed = Deployed()
    first = up(deployed, releasesKept="2")
    second = up(deployed, IMAGES[1], releasesKept="2")
    names = [derived_name({"*": image}) for image in IMAGES]
    assert sorted(released(second, POOL)) == sorted(names[:2])
    assert released(second, TEMPLATE)[names[0]] == released(first, TEMPLATE)[names[0]]  # the old one untouched
    assert [r["name"] for r in listed(second)] == names[:2]
    dropped_at = deployed.now
    third = up(deployed, IMAGES[2], releasesKept="2")
    assert [r["name"] for r in listed(third)] == names[1:]
    # The retired release keeps its template and pool (unchanged) while a session of it may still run: its
    # sessions' claims name that pool, and agent-sandbox turns a bound claim whose pool is gone to WarmPoolNotFound.
    assert sorted(released(third, POOL)) == sorted(released(third, TEMPLATE)) == sorted(names)
    assert released(third, TEMPLATE)[names[0]] == released(first, TEMPLATE)[names[0]]
    # Its pool alone is labelled retiring: the dispatcher that no longer lists it empties it at once, so its
    # warm pods hold no node or quota while it waits to go (dispatcher/reserve/pool_sizing.py).
    labelled = {name: pool["metadata"]["labels"].get(LABEL_RETIRING) for name, pool in released(third, POOL).items()}
    assert labelled == {names[0]: "true", names[1]: None, names[2]: None}
    assert not any(LABEL_RETIRING in pool["metadata"]["labels"] for pool in released(second, POOL).values())
    (retiring,) = builds(third)["retiring"]
    assert (retiring["name"], retiring["retired"]) == (names[0], dropped_at.strftime(STAMP))
    life = timedelta(seconds=longest_bot_seconds(MAX_SESSION_SECONDS))
    assert retiring["livesSeconds"] == life.total_seconds()
    # An `up` before its time keeps it, however many `up`s come between; the first one after it deletes it.
    for moment in (dropped_at + timedelta(minutes=1), dropped_at + life - timedelta(seconds=1)):
        deployed.now = moment
        kept = up(deployed, IMAGES[2], releasesKept="2")
        assert sorted(released(kept, POOL)) == sorted(released(kept, TEMPLATE)) == sorted(names)
        assert [r["name"] for r in listed(kept)] == names[1:]  # never offered again
    deployed.now = dropped_at + life
    gone = up(deployed, IMAGES[2], releasesKept="2")
    assert sorted(released(gone, POOL)) == sorted(released(gone, TEMPLATE)) == sorted(names[1:])
    assert [r["name"] for r in listed(gone)] == names[1:] and builds(gone)["retiring"] == []


def test_a_stack_from_before_the_builds_keeps_every_release_its_list_named() -> None:
    """Its last `up` recorded `releases` only: the first `up` that records builds reads them from that list."""
    deployed = Deployed()
    up(deployed, releasesKept="2")
    up(deployed, IMAGES[1], releasesKept="2")
    del deployed.outputs[BUILDS_OUTPUT]
    again = up(deployed, IMAGES[1], releasesKept="2")
    names = [derived_name({"*": image}) for image in IMAGES[:2]]
    assert [r["name"] for r in listed(again)] == names and sorted(released(again, POOL)) == sorted(names)


def test_the_longest_life_is_the_rollout_then_a_whole_session_to_its_claims_end() -> None:
    """An old replica starts sessions of a dropped release until the rollout's update wait (its grace and
    margin) is over; the last of them ends by its claim's shutdownTime."""
    assert longest_bot_seconds(900) == (900 + 60 + 600) + (900 + 60)
