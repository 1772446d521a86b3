"""What the GCP stack gives the Compute Engine warm reserve (dispatcher/machines/gce/reserve.py):
the launcher may relabel only this stack's VMs, reserve VMs included, and the startup script hands
a reserve VM's bot its id and image, and nothing when they are absent (a session's VM)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.store.local import LocalCoordination
from stacks.gcp.startup import STARTUP_SCRIPT
from stacks.tools.mocks import Run


def test_the_launcher_may_relabel_this_stacks_vms_reserve_vms_included(gcp: Run) -> None:
    (role,) = [r for r in gcp.of_type("gcp:projects/iAMCustomRole:IAMCustomRole") if r.name.endswith("launcher")]
    assert "compute.instances.setLabels" in role.inputs["permissions"]  # a claim relabels its reserve VM
    (grant,) = [r for r in gcp.of_type("gcp:projects/iAMMember:IAMMember")
                if re.search(r"_launcher_\d{8}$", r.inputs["role"])]
    prefix = re.search(r'startsWith\("([^"]+)"\)', grant.inputs["condition"]["expression"])
    assert prefix is not None
    stack_prefix = prefix.group(1).rsplit("/", 1)[1][:-1]  # VM names are <GCE_INSTANCE_PREFIX>-<rest>
    env = {"GCE_PROJECT": "vf-test", "GCE_ZONE": "europe-west4-a", "GCE_INSTANCE_TEMPLATE": "t",
           "GCE_INSTANCE_PREFIX": stack_prefix}
    reserve = GceWarmMachines(GceSettings.from_env(env),
        coordination=LocalCoordination(), max_idle_seconds=900, max_session_seconds=900)
    idle_name = reserve.idle_name("rsv-0123456789ab")
    assert f"projects/vf-test/zones/europe-west4-a/instances/{idle_name}".startswith(prefix.group(1))
    assert len(idle_name) <= 63


@pytest.mark.parametrize("reserve", [True, False])
def test_startup_script_names_a_reserve_vms_bot_only_when_it_is_one(tmp_path: Any, reserve: bool) -> None:
    # The script's own lines, with the metadata server replaced by a shell function.
    fragment = re.search(r"\nfor pair in [^\n]*\n(?:  [^\n]*\n)+done\n", STARTUP_SCRIPT)
    assert fragment is not None
    env_file = tmp_path / "bot.env"
    metadata = 'case "$1" in bot-machine-id) printf rsv-1;; bot-image-digest) printf img;; *) return 22;; esac'
    script = (f"set -euo pipefail\nENV_FILE={env_file}\n: > $ENV_FILE\n"
              f"md() {{ {metadata if reserve else 'return 22'}; }}\n" + fragment.group(0))
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    assert env_file.read_text() == ("BOT_MACHINE_ID=rsv-1\nBOT_IMAGE_DIGEST=img\n" if reserve else "")


@pytest.mark.parametrize("transport", ["websocket", ""])
def test_startup_script_writes_a_session_value_only_when_the_vm_has_one(tmp_path: Any, transport: str) -> None:
    """An empty metadata value written as `BOT_TRANSPORT=` would override the image's own default
    (the Daily image's `daily`) for every session that is not a call, and every reserve VM."""
    start = STARTUP_SCRIPT.index("\nput() ")
    fragment = STARTUP_SCRIPT[start: STARTUP_SCRIPT.index("\n\n", start)]
    env_file = tmp_path / "bot.env"
    values = {"session-id": "s1", "bot-transport": transport}
    cases = "".join(f"{key}) printf %s '{value}';; " for key, value in values.items())
    script = (f"set -euo pipefail\nENV_FILE={env_file}\n: > $ENV_FILE\n"
              f"md() {{ case \"$1\" in {cases}*) return 22;; esac; }}\n" + fragment)
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    lines = env_file.read_text().splitlines()
    assert "VOICEFLEET_SESSION_ID=s1" in lines
    assert [line for line in lines if line.startswith("BOT_TRANSPORT")] == (
        [f"BOT_TRANSPORT={transport}"] if transport else [])
    assert not [line for line in lines if line.endswith("=")]  # no key the VM has no value for
