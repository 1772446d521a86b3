"""The plan's notes, each said once: the program runs again for the plan's own checks (a stack made
anew, the deployed configuration), and what those runs say is not printed a second time."""

from __future__ import annotations

import subprocess
import sys

from tests.infra.helpers import ROOT


def test_each_note_of_a_plan_is_printed_once() -> None:
    """Run as the operator runs it: under pytest its log capture would hide a second printing."""
    done = subprocess.run([sys.executable, "-m", "stacks.plan", "gcp-dev"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    said = [line for line in lines if "no alert policies" in line]
    assert said == [f"# gcp-dev note: {said[0].split('note: ', 1)[-1]}"], lines
    assert "voicefleet:botProject = 'examples/parrot'" in done.stderr  # as the stack file gives it, not '../…'
