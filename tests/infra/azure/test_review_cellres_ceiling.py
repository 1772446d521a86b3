"""Hostile review: the concurrency ceiling of an Azure stack whose bots spread over `aciCells`, now that the
dispatcher runs its warm reserve over ACI cells (dispatcher/factory.py: ACI_CELLS and BOT_CHANNEL_URL build
aci/cell_reserve.py's AciCellWarmMachines). Each test is a finding, strict-xfail until the product is fixed.

A reserve group is a container group like a session's: it holds one of the subscription's ContainerGroups and
its cores until it is claimed or deleted (ACI's quotas count groups and cores, not sessions:
learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits). With one
subscription the note counts `reserveMaxIdle` beside the sessions; with cells it still counts none
(stacks/config/ceiling_notes.py `reserve_bots` and `stack_notes`: "nor over ... ACI cells (the dispatcher runs
none over them)"), so it promises `reserveMaxIdle` more sessions than the groups and cores hold, and
docs/pulumi.md says the reserve's groups are "as for one subscription ... not counted", which one subscription's
note contradicts.
"""

from __future__ import annotations

import json

import pytest

from stacks.config import ceiling_notes
from tests.infra.azure.test_aci_cells import CELLS, plain
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner


def test_a_stack_files_ceiling_over_aci_cells_counts_the_reserves_groups() -> None:
    """`voicefleet config check --stack`: the groups and cores of 2 subscriptions (200 of each, documented
    defaults) hold 195 sessions beside 5 reserve groups, as one subscription's note says 95 beside them."""
    config = {"voicefleet:cloud": "azure", "azure-native:location": "westeurope", "voicefleet:botCpu": "1024",
              "voicefleet:maxConcurrentSessions": "200", "voicefleet:reserveMaxIdle": "5",
              "voicefleet:botChannel": "true", "voicefleet:aciCells": json.dumps(CELLS)}
    alone = ceiling_notes.stack_notes({k: v for k, v in config.items() if k != "voicefleet:aciCells"})
    assert "95 sessions beside reserveMaxIdle=5" in alone[0]  # one subscription: its reserve counted
    [note, *_] = ceiling_notes.stack_notes(config)
    assert "195 sessions beside reserveMaxIdle=5" in note, note


def test_the_programs_ceiling_over_aci_cells_counts_the_reserves_groups(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up`'s note for a stack whose dispatcher gets ACI_CELLS and the bot channel (so it runs the
    reserve over the cells): its groups and cores limits are counted beside reserveMaxIdle."""
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    run = stack("azure", secrets={**SECRETS, **CHANNEL_SECRETS}, aciCells=json.dumps(CELLS),
                maxConcurrentSessions="200", reserveMaxIdle="5")
    written = plain(run)
    assert "ACI_CELLS" in written and written.get("BOT_CHANNEL_URL")  # the dispatcher runs the reserve over cells
    [note] = [line for line in said if line.startswith("concurrency ceiling")]
    assert "beside reserveMaxIdle=5" in note, note
