"""voicefleet: read the stack's settings, build that cloud's component, export its outputs.

Pulumi runs this file with the program folder (infra/) as its working directory and first entry
of sys.path; the program's modules (stacks/, images/component.py and the dispatcher contract they
share) live at the repository root, one level up.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi  # noqa: E402

from stacks.config import front_door  # noqa: E402
from stacks.config import settings as stack_settings  # noqa: E402


def region() -> dict[str, pulumi.Input[object]]:
    """A whole deployment in one region: dispatcher, bots, store (the usual stack)."""
    settings = stack_settings.load()
    if settings.cloud == "aws":
        from stacks.aws.stack import AwsStack as Stack
    elif settings.cloud == "azure":
        from stacks.azure.stack import AzureStack as Stack  # type: ignore[assignment]
    elif settings.cloud == "k8s":
        from stacks.k8s.stack import K8sStack as Stack  # type: ignore[assignment]
    else:
        from stacks.gcp.stack import GcpStack as Stack  # type: ignore[assignment]
    return Stack(settings.prefix, settings).outputs


def global_front_door() -> dict[str, pulumi.Input[object]]:
    """`role: frontDoor`: only the global name over every region (docs/regions.md, "Front door")."""
    settings = front_door.load()
    if settings.cloud == "aws":
        from stacks.aws.front_door import FrontDoor
    else:
        from stacks.gcp.front_door import FrontDoor  # type: ignore[assignment]
    return FrontDoor(settings.prefix, settings).outputs


for key, value in (global_front_door() if front_door.is_front_door() else region()).items():
    pulumi.export(key, value)
