"""The stacks give the edge's drain its time (docs/sip.md#draining): the host's systemd unit stops it with SIGTERM and
waits its drain and its stop before podman or systemd kill it; the Kubernetes pod's grace is the same, and `up`
waits for a rollout that drains. `drainSeconds` reaches the edge's own file; the edge's default otherwise."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import EDGE, NAME, run_with_edge
from tests.infra.conftest import StackRunner
from tests.infra.k8s.test_sip_edge import DEPLOYMENT, K8S_EDGE, _named, run_k8s_edge
from tests.infra.test_sip_edge_apt import _boot_script

UNIT = re.compile(r"cat > /etc/systemd/system/sipedge\.service <<'UNIT'\n(.*?)\nUNIT\n", re.DOTALL)


def unit_of(script: str) -> dict[str, str]:
    """The [Service] lines of the edge's unit the boot script writes: each key's value."""
    found = UNIT.search(script)
    assert found is not None, script
    return dict(line.split("=", 1) for line in found.group(1).splitlines() if "=" in line and " " not in line[:1])


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_the_hosts_unit_stops_the_edge_with_sigterm_and_waits_its_drain_and_its_stop(
        stack: StackRunner, cloud: str) -> None:
    unit = unit_of(_boot_script(stack, cloud))  # several workers: Kamailio's stop too
    assert unit["KillSignal"] == "SIGTERM"
    # A kill the unit sends itself reaches `podman run` alone, which hands it to the edge (a drain), not every
    # worker in the unit's cgroup (each of which stops at once on SIGTERM).
    assert unit["KillMode"] == "mixed"
    assert unit["ExecStop"] == "/usr/bin/podman stop -t 345 sipedge"  # the edge's 300 s and its stop's 45
    assert unit["TimeoutStopSec"] == "360"  # podman's wait, and its kill's and the container's removal


def test_drain_seconds_reaches_the_edges_file_and_its_hosts_unit(stack: StackRunner) -> None:
    run = run_with_edge(stack, {**EDGE, "drainSeconds": 20})
    script = unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    assert "\ndrain_seconds = 20\n" in script
    unit = unit_of(script)
    assert (unit["ExecStop"], unit["TimeoutStopSec"]) == ("/usr/bin/podman stop -t 65 sipedge", "80")
    assert "drain_seconds" not in unwrap(run_with_edge(stack).one("aws:ec2/instance:Instance", NAME).inputs)[
        "userData"]  # unset: the edge's own default


def _pod(run: Run) -> dict[str, Any]:
    return dict(unwrap(_named(run, DEPLOYMENT, "sip-edge").inputs)["spec"]["template"])


@pytest.mark.parametrize(("drain", "grace", "kept_from_the_autoscaler"), [
    (None, 345, False),  # the edge's 300 s: within the autoscaler's 600 s
    (900, 945, True),  # past it: the autoscaler's scale-down would kill the pod mid-drain
])
def test_the_edges_pod_is_given_its_drain_and_up_waits_for_a_rollout_that_drains(
        stack: StackRunner, drain: int | None, grace: int, kept_from_the_autoscaler: bool) -> None:
    run = run_k8s_edge(stack, K8S_EDGE if drain is None else {**K8S_EDGE, "drainSeconds": drain})
    template = _pod(run)
    assert template["spec"]["terminationGracePeriodSeconds"] == grace
    annotations = template["metadata"].get("annotations", {})
    assert (annotations.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false") is kept_from_the_autoscaler
    waited = _named(run, DEPLOYMENT, "sip-edge").custom_timeouts
    assert int(waited["update"].removesuffix("s")) > grace and int(waited["delete"].removesuffix("s")) > grace
