"""The ceiling of Compute Engine bots over cells (stacks/config/ceiling_cells.py): each project's rate and CPU
quota are its own, so they add up; a CPU quota counts only where every cell's was read. A session is counted
as maxConcurrentSessions counts it, its VM's boot included: one VM a session, whatever the boot."""

from __future__ import annotations

from stacks.config.ceiling_cells import CellQuota, gce_cells
from stacks.config.gce_cells import CellPlace

A = CellPlace("a", "voicefleet-cell-a", "europe-west1")
B = CellPlace("b", "voicefleet-cell-b", "europe-west4")


def test_each_cells_read_cpu_quota_holds_its_own_vms_and_the_cells_hold_their_sum() -> None:
    found = gce_cells([CellQuota(A, 24), CellQuota(B, 3001)], "e2-standard-2", 4, 100)
    launches, cpus = found.limits
    assert launches.rate and launches.bots == 2 * 10 * 240  # each project paced at 10 inserts a second
    # 24 ÷ 2 = 12 VMs in a, 3,001 ÷ 2 = 1,500 in b (a VM is never split over projects): 1,512, not 3,025 ÷ 2
    assert (cpus.figure, cpus.bots, cpus.code) == (3025, 1512, "CPUS")
    assert found.sessions(reserve=0) == 1512  # one VM a session, not 1,512 ÷ a boot factor
    assert found.where == "2 projects (gceCells), europe-west1, europe-west4"
    assert "a: 24 + b: 3,001 vCPUs" in cpus.how


def test_a_cell_unread_leaves_the_cpu_quotas_uncounted_and_says_what_they_need_together() -> None:
    found = gce_cells([CellQuota(A, 24), CellQuota(B)], "e2-standard-2", 4, 100)
    (launches,) = found.limits
    (need,) = found.needs
    # 100 sessions, one VM each, × 2 vCPUs
    assert "this plan knows not all of the cells' quotas (unread: b)" in need
    assert "100 VMs × 2 vCPUs" in need
    # the warm reserve runs over the cells too: its VMs need their vCPUs beside the sessions'
    (with_reserve,) = gce_cells([CellQuota(A, 24), CellQuota(B)], "e2-standard-2", 4, 100, reserve=10).needs
    assert "110 VMs (100 sessions + 10 reserve) × 2 vCPUs (e2-standard-2) = 220" in with_reserve, with_reserve
    assert "= 200" in need and "--project voicefleet-cell-b" in need and "--project voicefleet-cell-a" not in need
