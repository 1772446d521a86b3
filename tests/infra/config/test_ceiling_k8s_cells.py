"""The ceiling over `k8sCells` (stacks/config/ceiling_cells.py): each cluster's max_pods, counted once whatever the
dispatcher's replicas (every replica counts every replica's pods in a cell, as its listing of the namespace finds
them), summed, the reserve's idle pods among them; a cell without max_pods leaves it unbounded, said so; and `voicefleet
config check --stack` says it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.machines.base import LaunchSpec, MachinesError
from dispatcher.machines.k8s.cell_settings import K8sCell
from dispatcher.machines.k8s.cells import K8sCellMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.store.local import LocalCoordination
from stacks.config import ceiling_cells
from stacks.config.ceiling_notes import said, stack_notes
from tests.fakes.fixtures import fake_k8s, fake_k8s_cell  # noqa: F401 - the fakes' fixtures, used below
from tests.fakes.k8s import FakeKubernetes
from tests.support.cells import homed_in

COUNTED_ONCE = "counted once, not per dispatcher replica: each replica counts the cell's bot pods from its listing"


def cell(name: str, max_pods: int | None) -> K8sCell:
    return K8sCell(name, f"https://{name}.example.com", f"/var/run/cells/{name}/token",
                   f"/var/run/cells/{name}/ca.crt", "voicefleet-bots", max_pods)


def stack_cell(name: str, max_pods: int) -> dict[str, Any]:
    return {"name": name, "api_url": f"https://10.0.0.{ord(name)}", "token_file": f"/var/run/cells/{name}/token",
            "ca_file": f"/var/run/cells/{name}/ca.crt", "secret": f"voicefleet-cell-{name}", "max_pods": max_pods}


def k8s_stack(sessions: int, cells: list[dict[str, Any]], **more: str) -> dict[str, str]:
    return {"voicefleet:cloud": "k8s", "voicefleet:maxConcurrentSessions": str(sessions),
            "voicefleet:k8sCells": json.dumps(cells), **{f"voicefleet:{k}": v for k, v in more.items()}}


def test_each_clusters_max_pods_counts_once_and_they_add_up() -> None:
    found = ceiling_cells.k8s_cells([cell("a", 100), cell("b", 50)], sessions=400)
    (pods,) = found.limits
    assert (pods.figure, pods.bots, found.sessions(0)) == (150, 150, 150)
    assert f"max_pods (a 100 + b 50), {COUNTED_ONCE} of the namespace" in pods.how
    note, warnings = said(found, 500, 0)
    assert "150 sessions at once" in note
    (warning,) = warnings
    assert "the stack needs 500 pods" in warning and COUNTED_ONCE in warning, warning


def test_more_dispatcher_replicas_do_not_raise_the_ceiling_over_the_cells() -> None:
    cells = [stack_cell("a", 100), stack_cell("b", 50)]
    for replicas in ("1", "3"):
        note, warning, *_ = stack_notes(k8s_stack(400, cells, k8sDispatcherReplicas=replicas, reserveMaxIdle="0"))
        assert "concurrency ceiling (Kubernetes, 2 clusters (k8sCells: a, b)): 150 sessions at once" in note, note
        assert "maxConcurrentSessions=400 is above" in warning and "the stack needs 400 pods" in warning


async def test_the_dispatchers_replicas_hold_a_cell_to_its_max_pods_together_as_the_plan_counts_it(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:  # noqa: F811 - the fixtures
    """Two replicas over two cells of max_pods 1: once each replica has listed the clusters (its reaper's sweep),
    it counts the other's pods too, so the deployment runs 2 pods, the plan's ceiling, not 2 × 2."""
    found = ceiling_cells.k8s_cells([cell("a", 1), cell("b", 1)], sessions=4)
    env = {k: v for k, v in fake_k8s.env.items() if k not in ("K8S_API_URL", "K8S_TOKEN_FILE")}
    listed = [{"name": name, "api_url": fake.url, "token_file": fake.token_file, "max_pods": 1}
              for name, fake in (("a", fake_k8s), ("b", fake_k8s_cell))]
    env |= {"K8S_RETRY_DEADLINE_SECONDS": "2", "K8S_TIMEOUT_SECONDS": "2", "K8S_CELLS": json.dumps(listed)}
    coordination = LocalCoordination()
    first, second = (K8sCellMachines(K8sSettings.from_env(env), coordination) for _ in range(2))
    try:
        sessions = homed_in(first, "a", 3)
        await first.launch(_spec(sessions[0]))
        await second.list()  # its sweep: a holds the first replica's pod
        await second.launch(_spec(sessions[1]))  # so its start goes to b
        assert f"vf-{sessions[1]}" in fake_k8s_cell.pods
        await first.list()
        with pytest.raises(MachinesError) as refused:  # a third pod would run past both cells' max_pods
            await first.launch(_spec(sessions[2]))
        assert refused.value.reason == "k8s_capacity", refused.value
        assert len(fake_k8s.standing()) + len(fake_k8s_cell.standing()) == found.sessions(0) == 2
    finally:
        await first.aclose()
        await second.aclose()


def _spec(session_id: str) -> LaunchSpec:
    return LaunchSpec(session_id=session_id, body_digest="d" * 32, max_session_seconds=600, transport="webrtc")


def test_a_cell_without_max_pods_leaves_the_ceiling_unbounded_and_says_what_each_cluster_needs() -> None:
    found = ceiling_cells.k8s_cells([cell("a", 100), cell("b", None), cell("c", None)], sessions=900)
    assert found.limits == ()
    note, warnings = said(found, 900, 0)
    assert warnings == []
    assert "not counted" in note and "unbounded here: cell(s) b, c set no max_pods" in note
    assert "the others hold 100 pods" in note and "about 300 pods in each cluster" in note


def test_config_check_counts_the_reserve_pods_over_the_cells_against_their_max_pods() -> None:
    """The reserve runs over the clusters and its idle pods count in each cell's max_pods, as the dispatcher
    counts them: reserveMaxIdle is taken from the cells' pods together."""
    config = k8s_stack(100, [stack_cell("a", 40)], reserveMaxIdle="30", botChannel="true")
    note, warning, *_ = stack_notes(config)
    assert "concurrency ceiling (Kubernetes, 1 cluster (k8sCells: a)): 10 sessions at once" in note, note
    assert "= 10 sessions beside reserveMaxIdle=30" in note, note
    assert "maxConcurrentSessions=100 + reserveMaxIdle=30 = 130 bots is above" in warning, warning
    off = k8s_stack(100, [stack_cell("a", 40)], reserveMaxIdle="0")  # the reserve off: every pod a session's
    assert "40 sessions at once" in stack_notes(off)[0]


def test_an_unbounded_cell_list_says_what_the_sessions_and_the_reserve_need_of_each_cluster() -> None:
    found = ceiling_cells.k8s_cells([cell("a", 100), cell("b", None)], sessions=900, reserve=20)
    note, _ = said(found, 900, 20)
    assert "900 sessions and 20 reserve pods need about 460 pods in each cluster" in note, note
