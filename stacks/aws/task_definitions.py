"""What a destroy leaves on AWS: the bot task definition revisions, and the command that removes them.

The bot task definitions set `skip_destroy` (stacks/aws/bot_runtime.py: a replaced revision stays
ACTIVE so a kept release still starts), and the provider honours it at `pulumi destroy` too
(terraform-provider-aws `resourceTaskDefinitionDelete`: "Retaining ECS Task Definition Revision"),
so every revision ever registered outlives the roles, log group and images it names. An ACTIVE
revision costs nothing, but a re-created stack would find them. `python -m stacks.drain`
deregisters them before a destroy; this command does the same after one, family by family.
"""

from __future__ import annotations


def deregister_command(family: str, region: str) -> str:
    """Deregisters every ACTIVE revision of `family` alone. ECS's API reference calls
    ListTaskDefinitions' `familyPrefix` "the full family name", though the flag's name (and
    ListTaskDefinitionFamilies' own `familyPrefix`, a true prefix) says prefix: the query keeps the
    exact family either way, so `<prefix>-bot` never takes `<prefix>-bot-webrtc`, or another
    stack's `<prefix>-bot-…`, with it.
    The CLI pages through `list-task-definitions` by itself; an INACTIVE revision can then be
    deleted for good with `aws ecs delete-task-definitions`."""
    listed = (f"aws ecs list-task-definitions --region {region} --family-prefix {family} --status ACTIVE "
              f"--query \"taskDefinitionArns[?contains(@, '/{family}:')]\" --output text")
    return (f"for arn in $({listed}); do aws ecs deregister-task-definition --region {region} "
            "--task-definition \"$arn\" --query taskDefinition.taskDefinitionArn --output text; done")
