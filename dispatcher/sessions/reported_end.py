"""A session is over once its bot says so: `GET /sessions/{id}` answers `ended` (or `failed`) from
the bot's own `ended` report, not only from its machine's end.

A bot reports `ended` over its channel as its session ends, then winds its process down: it cancels
what is left of its pipeline, flushes its spans, closes its channel and exits, bounded but seconds on
a loaded host, and longer where the user's code holds the exit (an SDK that flushes at exit). The
machine's state follows the process, so a status read from it alone stayed `joined` for seconds
after the timeline had `ended` (3.5 s seen after a model service died), and a caller waiting for
the end waited that long. The listing (`GET /sessions`) closes on the same report. Once the
machine's own end is known it answers: it is the provider's word, and it can be worse (a bot that
said it ended well, then was killed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dispatcher.machines.base import Machine, MachineState


def as_reported(machine: Machine, events: list[dict[str, Any]]) -> Machine:
    """`machine` as its session stands: ended or failed, as its bot's `ended` report says, while the
    machine is still active; the machine itself otherwise."""
    if not machine.state.is_active:
        return machine
    report = next((e for e in events if e.get("event") == "ended"), None)
    if report is None:
        return machine
    if report.get("exit_code") in (None, 0):
        return replace(machine, state=MachineState.ENDED)
    # Worded as the local provider words the exit that follows (machines/local/provider.py), so the
    # detail does not change when the machine's own end replaces the report.
    said = report.get("detail")
    return replace(machine, state=MachineState.FAILED,
                   detail=f"exit code {report.get('exit_code')}{f': {said}' if isinstance(said, str) and said else ''}")
