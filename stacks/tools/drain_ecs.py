"""The drain's ECS bots with ECS_CELLS: the stack's own account's and each cell's, the way the dispatcher reaches
them (the cell's role, assumed with the operator's credentials as the dispatcher assumes it with its own:
dispatcher/machines/ecs/cells.py).

The drain reads the settings without the dispatcher's start-up check that each cell maps every release's task
definition (EcsSettings.check_cells): a stack whose release a cell does not map yet still has bots to stop there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.cell_settings import EcsCell, ecs_cells
from dispatcher.machines.ecs.cells import ASSUME_BACKOFF, session_name
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.ecs.settings import EcsSettings
from stacks.tools.drain_creates import DrainCreates
from voicefleet_settings.read import setting_text


def drain_settings(env: Mapping[str, str]) -> EcsSettings:
    """The stack's ECS settings and its cells, unchecked against the releases (the module's docstring says why)."""
    return replace(EcsSettings.from_env({**env, "ECS_CELLS": ""}), cells=ecs_cells(setting_text(env, "ECS_CELLS")))


class CellTasks(EcsWarmMachines):
    """One cell's account's bots, listed and stopped through the cell's role."""

    def __init__(self, settings: EcsSettings, cell: EcsCell, *, channel_url: str) -> None:
        self._role = AssumedRole(role_arn=cell.role_arn, session_name=session_name(), external_id=cell.external_id,
                                 endpoint=settings.sts_endpoint_url, region=settings.region, source=AwsCredentials(),
                                 timeout=settings.read_timeout, connect_timeout=settings.connect_timeout,
                                 backoff=ASSUME_BACKOFF)
        super().__init__(settings.for_cell(cell), channel_url=channel_url, coordination=DrainCreates(),
                         credentials=self._role, cell=cell.name)

    async def aclose(self) -> None:
        await super().aclose()
        await self._role.aclose()


def cell_tasks(settings: EcsSettings, *, channel_url: str) -> dict[str, CellTasks]:
    """Each cell's sweeper, by the cell's name and account."""
    return {f"cell {cell.name} ({cell.account})": CellTasks(settings, cell, channel_url=channel_url)
            for cell in settings.cells}
