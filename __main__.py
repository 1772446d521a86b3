"""voicefleet: read the stack's settings, build that cloud's component, export its outputs."""

from stacks import settings as stack_settings

settings = stack_settings.load()
if settings.cloud == "aws":
    from stacks.aws import AwsStack as Stack
else:
    from stacks.gcp import GcpStack as Stack  # type: ignore[assignment]

import pulumi  # noqa: E402

stack = Stack(settings.prefix, settings)
for key, value in stack.outputs.items():
    pulumi.export(key, value)
