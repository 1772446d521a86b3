"""Machines providers behind one protocol; `MACHINES` picks one (see `dispatcher.factory`)."""

from dispatcher.machines.base import (
    LaunchResult,
    LaunchSpec,
    Machine,
    Machines,
    MachinesError,
    MachineState,
    WaitTimeout,
)

__all__ = [
    "LaunchResult",
    "LaunchSpec",
    "Machine",
    "MachineState",
    "Machines",
    "MachinesError",
    "WaitTimeout",
]
