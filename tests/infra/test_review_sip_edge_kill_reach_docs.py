"""Review: docs/sip.md (the Kamailio front's "What each deployment does") still says podman gives the edge's
container "a cgroup of its own (its default `--cgroups=enabled`), outside the unit's, so the unit's `KillMode` does
not reach it". Since the unit runs `podman run --cgroups=split` with `Delegate=yes` (stacks/shared/sip_edge_host.py),
the container's processes, each worker and Kamailio included, are in sipedge.service's own cgroup (podman 4.3.1
libpod/container_internal_linux.go getOCICgroupPath: `<own cgroup>/libpod-payload-<id>`; conmon in `<own>/runtime`,
libpod/oci_conmon_common.go), and the unit's KillMode, control-group by default, now does reach them: any kill systemd
sends the unit itself (`systemctl kill sipedge`, the stop after `podman run` died or an `ExecStop` that failed)
SIGTERMs every worker directly, which a worker takes as "stop at once" (sipedge/edge.py Edge.run, `at_once`), so the
calls are cut, not drained. Before, that SIGTERM reached `podman run`, whose sig-proxy handed it to tini and the
supervisor: a drain. An operator reading the docs is told the opposite of what the unit now does."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.conftest import StackRunner
from tests.infra.test_review_sip_edge_host_shutdown import UNIT
from tests.infra.test_sip_edge_apt import _boot_script

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sip.md"


def test_the_docs_do_not_say_the_units_kill_misses_a_container_that_runs_in_its_cgroup(stack: StackRunner) -> None:
    found = UNIT.search(_boot_script(stack, "gcp"))
    assert found is not None
    assert "--cgroups=split" in found.group(1)  # the container is in the unit's cgroup
    docs = " ".join(DOCS.read_text().split())
    stale = re.search(r"outside the unit's, so the unit's `KillMode` does not reach it", docs)
    assert stale is None, docs[stale.start() - 200:stale.end() + 100]
