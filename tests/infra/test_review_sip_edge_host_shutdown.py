"""Review: a host's shutdown (a cloud replacing or stopping the edge's host, what docs/sip.md#draining says drains)
does not reach the edge through the unit's `ExecStop`. `podman run` with its default `--cgroups=enabled` and the
systemd cgroup manager puts the container's processes in a transient `machine.slice/libpod-<id>.scope`, outside
sipedge.service. At shutdown systemd stops that scope on its own, in parallel with the service (podman issue #3148;
ClusterLabs resource-agents PR #1374: "systemd stops those scope early, which in turn sends a SIGTERM to ...
containers before [the service's] stop"), and a scope's stop signals every process in it (KillMode=control-group):
- the edge gets SIGTERM twice, systemd's own and tini's forward of PID 1's: its second signal ends the drain at once
  (sipedge/drain.py StopSignals.signalled, sipedge/supervisor.py Supervisor._signalled);
- each worker gets SIGTERM itself, which a worker takes as "stop at once" (sipedge/edge.py Edge.run, at_once);
- the scope is SIGKILLed after DefaultTimeoutStopSec (90 s), whatever drain_seconds says.
`--cgroups=split` with `Delegate=yes` (what Quadlet writes) keeps the container in the service's own cgroup, so only
the unit's stop, and its `podman stop -t`, signals it; the edge also takes a SIGTERM repeated within a second of the
first for the same stop (sipedge/drain.py REPEAT_SECONDS)."""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import StackRunner
from tests.infra.test_sip_edge_apt import _boot_script

UNIT = re.compile(r"cat > /etc/systemd/system/sipedge\.service <<'UNIT'\n(.*?)\nUNIT\n", re.DOTALL)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_the_edges_container_stays_in_its_units_cgroup_so_a_hosts_shutdown_drains_it(
        stack: StackRunner, cloud: str) -> None:
    found = UNIT.search(_boot_script(stack, cloud))
    assert found is not None
    run = found.group(1).split("ExecStart=", 1)[1].split("\nExecStop", 1)[0]
    assert "--cgroups=split" in run, run
    assert "\nDelegate=yes\n" in found.group(1), found.group(1)  # the cgroup podman splits is the unit's, delegated
