"""voicefleet: read the stack's settings, build that cloud's component, export its outputs.

Pulumi runs this file with the program folder (infra/) as its working directory and first entry
of sys.path; the program's modules (stacks/, images/component.py and the dispatcher contract they
share) live at the repository root, one level up.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.config import settings as stack_settings  # noqa: E402

settings = stack_settings.load()
if settings.cloud == "aws":
    from stacks.aws.stack import AwsStack as Stack
else:
    from stacks.gcp.stack import GcpStack as Stack  # type: ignore[assignment]

import pulumi  # noqa: E402

stack = Stack(settings.prefix, settings)
for key, value in stack.outputs.items():
    pulumi.export(key, value)
