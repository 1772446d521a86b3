"""The clean-up docs/kubernetes.md gives for a Kubernetes cell removed undrained, run against a cluster holding
the pods the dispatcher makes there: it deletes the idle pods (no session can claim one any more) and the
ended ones, never the pod of a session still running or starting (a claimed idle pod's too), however early
it is run. Each command is judged by the API server's own label and field selector rules (tests/fakes/k8s.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from dispatcher.machines.k8s.pods import IDLE_PREFIX, session_pod_name
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_k8s_cell_reserve import other_replica, reserve_env
from tests.fakes.k8s import FakeKubernetes, matches, parse_selector
from tests.fakes.k8s_watch import POD_FIELDS, fields_match, parse_fields
from tests.support.cells import homed_in

DOCS = Path(__file__).parents[3] / "docs" / "kubernetes.md"


def cleanup_commands() -> list[list[str]]:
    """Each `kubectl … delete pods …` the docs' "Removing a cell" gives, as its words."""
    section = DOCS.read_text().partition("**Removing a cell.**")[2].partition("\n\n")[0]
    spans = (" ".join(span.split()) for span in re.findall(r"`(kubectl [^`]*)`", section))
    commands = [shlex.split(span) for span in spans if " delete pods " in span]
    assert commands, "the docs give no clean-up for a cell removed undrained"
    return commands


def selected(command: list[str], pods: dict[str, dict[str, Any]]) -> set[str]:
    """The pods `command` deletes: those its label selector and field selector (both, where given) match."""
    labels = next((command[i + 1] for i, word in enumerate(command) if word in ("-l", "--selector")), None)
    fields = next((word.partition("=")[2] for word in command if word.startswith("--field-selector=")), "")
    assert labels is not None, f"{' '.join(command)}: no label selector, so it deletes every pod of the namespace"
    wanted, phases = parse_selector(labels), parse_fields(fields, POD_FIELDS)
    return {name for name, pod in pods.items()
            if matches(wanted, pod["metadata"].get("labels") or {}) and fields_match(phases, POD_FIELDS, pod)}


async def test_the_clean_up_of_a_removed_cell_deletes_its_idle_and_ended_pods_and_no_running_session(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    machines = other_replica(reserve_env(fake_k8s, fake_k8s_cell), LocalCoordination())
    try:
        for bot_id in ("rsv-idle", "rsv-ended", "rsv-claimed"):
            await machines._warm["a"].run_idle(bot_id, "credential-" + bot_id)
            fake_k8s.set_phase(IDLE_PREFIX + bot_id, "Running")
        fake_k8s.set_phase(IDLE_PREFIX + "rsv-ended", "Failed", exit_code=137, reason="DeadlineExceeded")
        claimed, running, starting, done, failed = homed_in(machines, "a", 5)
        await machines.adopt("rsv-claimed", spec(claimed))
        for session in (running, starting, done, failed):
            await machines.launch(spec(session))
        fake_k8s.set_phase(session_pod_name(running), "Running")
        fake_k8s.set_phase(session_pod_name(done), "Succeeded")
        fake_k8s.set_phase(session_pod_name(failed), "Failed", exit_code=1)
    finally:
        await machines.aclose()
    deleted = set().union(*(selected(command, fake_k8s.pods) for command in cleanup_commands()))
    live = {IDLE_PREFIX + "rsv-claimed", session_pod_name(running), session_pod_name(starting)}
    assert not deleted & live, f"the clean-up cuts live sessions: {sorted(deleted & live)}"
    assert deleted == set(fake_k8s.pods) - live
