"""Local machines for tests that dial the channel by hand, as bots no process launched.

Local bots prove they are the process launched for their credential through their launch socket
(dispatcher/machines/local/launch_proof.py); a test that plays a bot with a credential it issued
itself has no such process. These tests check what the channel does once a hello is admitted
(its rules, its routing, the bot host's side), not who may dial: they get a provider that takes
the credential alone. tests/security/test_local_cold_race.py checks the launch proof itself.
"""

from __future__ import annotations

from dispatcher.channel.identity import Unverified
from dispatcher.machines.local.provider import LocalMachines, LocalSettings


def hand_dialled(settings: LocalSettings | None = None) -> LocalMachines:
    machines = LocalMachines(settings)
    machines.identity = Unverified("the test dials by hand, as bots no process launched")
    return machines
