"""The status a bot's `ended` report gives its session while its machine still runs
(dispatcher/sessions/reported_end.py); the machine's own end, once known, is the answer."""

from __future__ import annotations

from dispatcher.machines.base import Machine, MachineState
from dispatcher.sessions.reported_end import as_reported

RUNNING = Machine("s-1", "pid-1", MachineState.JOINED, 0.0)


def test_a_bots_failed_end_is_failed_with_its_own_words_and_a_clean_one_ended() -> None:
    failed = as_reported(RUNNING, [{"event": "ready"}, {"event": "ended", "reason": "bot_failed", "exit_code": 4,
                                                       "detail": "bot.py: bot() raised KeyError"}])
    assert (failed.state, failed.detail) == (MachineState.FAILED,
                                             "exit code 4: bot.py: bot() raised KeyError")
    assert as_reported(RUNNING, [{"event": "ended", "reason": "peer_disconnected", "exit_code": 0}]).state \
        is MachineState.ENDED


def test_no_report_leaves_the_machine_and_a_machine_that_ended_keeps_its_own_word() -> None:
    assert as_reported(RUNNING, [{"event": "ready"}, {"event": "stop_requested"}]) is RUNNING
    killed = Machine("s-1", "pid-1", MachineState.FAILED, 0.0, detail="killed by SIGKILL")
    assert as_reported(killed, [{"event": "ended", "reason": "signal", "exit_code": 0}]) is killed
