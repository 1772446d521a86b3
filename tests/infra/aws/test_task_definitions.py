"""After a destroy: the stack's `deregisterTaskDefinitions` commands, run by bash against a fake
`aws` CLI that answers `ecs list-task-definitions` and `ecs deregister-task-definition` as the real
one does (filters, `--query` by JMESPath, `--output text`, an unknown ARN refused), deregister every
ACTIVE revision of the stack's bot families and nothing of any other family. One liberty, the
stricter way: the fake reads `--family-prefix` as a prefix, where ECS's API reference calls
ListTaskDefinitions' `familyPrefix` "the full family name", so the command's own exact-family
query is what these tests prove."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stacks.tools.mocks import Run
from tests.infra.conftest import StackRunner
from tests.infra.helpers import component_outputs
from tests.infra.test_turn_server import run_with_turn

ARN = "arn:aws:ecs:{region}:123456789012:task-definition/{family}:{revision}"

FAKE_AWS = '''
import json, sys
import jmespath

args = sys.argv[1:]
state_file = {state!r}
state = json.load(open(state_file))
def option(name):
    return args[args.index(name) + 1] if name in args else None
def family(arn):
    return arn.rsplit("/", 1)[-1].split(":")[0]
def show(result):
    query, output = option("--query"), option("--output")
    if query:
        result = jmespath.search(query, result)
    if output == "text":
        print("\\t".join(result) if isinstance(result, list) else result)
    else:
        print(json.dumps(result))
assert args[0] == "ecs", args
region = option("--region")
if args[1] == "list-task-definitions":
    status = option("--status") or "ACTIVE"
    prefix = option("--family-prefix") or ""
    show({{"taskDefinitionArns": [arn for arn, found in state.items() if found == status
                                 and family(arn).startswith(prefix) and f":{{region}}:" in arn]}})
elif args[1] == "deregister-task-definition":
    arn = option("--task-definition")
    if state.get(arn) is None:
        print("An error occurred (ClientException) when calling the DeregisterTaskDefinition operation: "
              "The specified task definition does not exist.", file=sys.stderr)
        sys.exit(254)
    state[arn] = "INACTIVE"
    json.dump(state, open(state_file, "w"))
    show({{"taskDefinition": {{"taskDefinitionArn": arn, "status": "INACTIVE"}}}})
else:
    sys.exit(f"fake aws: {{args[1]}} is not modelled")
'''


def fake_aws(tmp_path: Path, revisions: dict[str, str]) -> dict[str, str]:
    """A PATH whose `aws` is the fake, over `revisions` (ARN -> status) kept in a state file."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps(revisions))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "aws"
    script.write_text(f"#!{sys.executable}\n" + FAKE_AWS.format(state=str(state)))
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_commands_deregister_every_active_revision_of_the_stack_s_bot_families(
        stack: StackRunner, tmp_path: Path) -> None:
    run: Run = run_with_turn(stack, "aws")
    commands = component_outputs(run, "aws")["deregisterTaskDefinitions"]
    region = commands[0].split("--region ", 1)[1].split(" ", 1)[0]
    ours = [ARN.format(region=region, family=family, revision=revision)
            for family in ("voicefleet-aws-test-bot", "voicefleet-aws-test-bot-webrtc") for revision in (1, 2, 3)]
    others = [ARN.format(region=region, family="voicefleet-aws-test-botany", revision=1),  # a longer family
              ARN.format(region="us-west-2", family="voicefleet-aws-test-bot", revision=9)]  # another region's
    env = fake_aws(tmp_path, {**dict.fromkeys([*ours, *others], "ACTIVE")})
    assert len(commands) == 2
    for command in commands:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        assert done.stderr == ""
    state = json.loads((tmp_path / "state.json").read_text())
    assert {arn for arn, status in state.items() if status == "INACTIVE"} == set(ours)


def test_the_bot_family_s_command_leaves_the_smallwebrtc_family_to_its_own(
        stack: StackRunner, tmp_path: Path) -> None:
    """Were `--family-prefix <prefix>-bot` a prefix, it would list `<prefix>-bot-webrtc` too; the query
    keeps the exact family."""
    (command, _) = component_outputs(run_with_turn(stack, "aws"), "aws")["deregisterTaskDefinitions"]
    region = command.split("--region ", 1)[1].split(" ", 1)[0]
    bot, webrtc = (ARN.format(region=region, family=f, revision=1)
                   for f in ("voicefleet-aws-test-bot", "voicefleet-aws-test-bot-webrtc"))
    env = fake_aws(tmp_path, {bot: "ACTIVE", webrtc: "ACTIVE"})
    subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True, text=True,
                   timeout=60, check=True)
    assert json.loads((tmp_path / "state.json").read_text()) == {bot: "INACTIVE", webrtc: "ACTIVE"}
