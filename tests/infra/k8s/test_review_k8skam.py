"""Review of the Kubernetes edge's front in a container of its own (stacks/k8s/sip_edge.py; docs/sip.md "The front in
a container of its own"). The docs say "either container could still read the other's files on a shared volume. The
only shared volume is the edge's file, which holds no secret." A pod's containers share more than its volumes: the
pod's IPC namespace (Kubernetes' Pod docs: containers of a pod "can also communicate with each other using standard
inter-process communications like SystemV semaphores or POSIX shared memory") and its runtime's /dev/shm, one
world-writable tmpfs mounted into every container of the sandbox (cri-o/cri-o test/shm.bats "ctr check shared
/dev/shm": a file one container writes there, another lists; containerd's CRI mounts the sandbox's shm the same
way). Kamailio (Debian's 5.6: `kamailio -I` says SHM_MMAP, USE_FUTEX) keeps its shared memory in anonymous mappings,
so nothing of its is there today, but the claim is what a reader weighs a future change against, and a worker can
fill that tmpfs (charged to the pod's memory) or leave there what the front might read. Either each container gets
its own /dev/shm (an emptyDir of medium Memory, its own size limit) or the docs name both. A strict-xfail test until
each container got its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.tools.mocks import Run
from tests.infra.conftest import StackRunner
from tests.infra.k8s.test_sip_edge import FRONTED_EDGE, FRONTED_SECRETS, _pod, run_k8s_edge

SECTION = "#### The front in a container of its own"


@pytest.fixture
def fronted_run(stack: StackRunner) -> Run:
    return run_k8s_edge(stack, FRONTED_EDGE, secrets=FRONTED_SECRETS)  # the program cache runs it once


def _shm_volume(container: dict[str, Any]) -> str | None:
    return next((m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"), None)


def test_the_containers_share_no_memory_file_system_unless_the_docs_say_they_do(fronted_run: Run) -> None:
    workers, front = _pod(fronted_run)["containers"]
    own = [_shm_volume(c) for c in (workers, front)]
    apart = None not in own and own[0] != own[1]
    section = (Path(__file__).parents[3] / "docs" / "sip.md").read_text().split(SECTION, 1)[1].split("\n### ", 1)[0]
    said = "/dev/shm" in section and "IPC" in section
    assert apart or said, own
