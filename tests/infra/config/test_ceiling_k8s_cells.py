"""The ceiling over `k8sCells` (stacks/config/ceiling_cells.py): each cluster's max_pods × the dispatcher's replicas,
summed; a cell without max_pods leaves it unbounded, said so; and `voicefleet config check --stack` says it."""

from __future__ import annotations

import json

from dispatcher.machines.k8s.cell_settings import K8sCell
from stacks.config import ceiling_cells
from stacks.config.ceiling_notes import said, stack_notes


def cell(name: str, max_pods: int | None) -> K8sCell:
    return K8sCell(name, f"https://{name}.example.com", f"/var/run/cells/{name}/token",
                   f"/var/run/cells/{name}/ca.crt", "voicefleet-bots", max_pods)


def test_each_clusters_max_pods_counts_once_per_replica_and_they_add_up() -> None:
    found = ceiling_cells.k8s_cells([cell("a", 100), cell("b", 50)], replicas=3, sessions=400)
    (pods,) = found.limits
    assert (pods.figure, pods.bots, found.sessions(0)) == (450, 450, 450)
    assert "max_pods (a 100 + b 50) × 3 dispatcher replicas" in pods.how
    note, warnings = said(found, 500, 0)
    assert "450 sessions at once" in note
    (warning,) = warnings
    assert "the stack needs 500 pods" in warning and "÷ 3 replicas" in warning


def test_a_cell_without_max_pods_leaves_the_ceiling_unbounded_and_says_what_each_cluster_needs() -> None:
    found = ceiling_cells.k8s_cells([cell("a", 100), cell("b", None), cell("c", None)], replicas=2, sessions=900)
    assert found.limits == ()
    note, warnings = said(found, 900, 0)
    assert warnings == []
    assert "not counted" in note and "unbounded here: cell(s) b, c set no max_pods" in note
    assert "the others hold 200 pods" in note and "about 300 pods in each cluster" in note


def test_config_check_counts_the_cells_from_the_stack_file_with_no_reserve_over_them() -> None:
    cells = [{"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token",
              "ca_file": "/var/run/cells/a/ca.crt", "secret": "voicefleet-cell-a", "max_pods": 40}]
    config = {"voicefleet:cloud": "k8s", "voicefleet:maxConcurrentSessions": "100", "voicefleet:reserveMaxIdle": "30",
              "voicefleet:botChannel": "true", "voicefleet:k8sCells": json.dumps(cells)}
    note, warning, *_ = stack_notes(config)
    assert "concurrency ceiling (Kubernetes, 1 cluster (k8sCells: a)): 80 sessions at once" in note
    assert "maxConcurrentSessions=100 is above" in warning  # no reserveMaxIdle: every start over cells is cold
