"""AWS: the admin surface's key reaches the dispatcher only by reference, and nothing else may read it.

DISPATCHER_ADMIN_KEYS is a Secrets Manager secret the dispatcher's task definition names in its
`secrets` (pinned to the version the stack wrote), read by the dispatcher's execution role alone:
no bot role's policy names it, and no policy grants GetSecretValue on every secret.
"""

from __future__ import annotations

from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import ADMIN_KEY, CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import actions, changed_names, container, holding, mock_id, policy_statements

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
BOT_KEYS = {"deepgramApiKey": "SENTINEL-dg", "cartesiaApiKey": "SENTINEL-ca", "openaiApiKey": "SENTINEL-oa"}


def full(stack: StackRunner, secrets: dict[str, str] | None = None) -> Run:
    """A stack whose bots read secrets of their own: their provider keys and the channel's."""
    return stack("aws", secrets={**(secrets or SECRETS), **CHANNEL_SECRETS}, **CHANNEL["aws"], **BOT_KEYS)


def admin_secret_arn(run: Run) -> str:
    (secret,) = [r for r in run.of_type(SECRET) if r.name.endswith("-dispatcher-admin-keys")]
    return str(secret.outputs["arn"])


def test_the_dispatcher_gets_the_admin_key_by_reference_to_its_pinned_version(stack: StackRunner) -> None:
    run = full(stack)
    arn = admin_secret_arn(run)
    references = {s["name"]: s["valueFrom"] for s in container(run, "-dispatcher")["secrets"]}
    secret_arn, json_key, stage, version = references["DISPATCHER_ADMIN_KEYS"].rsplit(":", 3)
    assert (secret_arn, json_key, stage) == (arn, "", "") and version.startswith("v-")
    assert "DISPATCHER_ADMIN_KEYS" not in {e["name"] for e in container(run, "-dispatcher")["environment"]}
    # The value itself is written once, into its secret version, and nowhere else.
    assert [r.type for r in holding(run, ADMIN_KEY)] == [VERSION]


def test_only_the_dispatchers_execution_role_may_read_the_admin_key(stack: StackRunner) -> None:
    run = full(stack)
    arn = admin_secret_arn(run)
    readers = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if arn in unwrap(r.inputs)["policy"]]
    (reader,) = readers
    (dispatcher_role,) = [r for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-dispatcher-execution")]
    assert unwrap(reader.inputs)["role"] == mock_id(dispatcher_role)
    # The bots' roles read their own secrets (a real grant, so this is no empty check), never the admin key.
    bot_secrets = {s["name"] for s in container(run, "-bot")["secrets"]}
    assert "DEEPGRAM_API_KEY" in bot_secrets and "DISPATCHER_ADMIN_KEYS" not in bot_secrets
    for statement in policy_statements(run):
        if any(action.startswith("secretsmanager:") for action in actions(statement)):
            assert "*" not in statement.get("Resource", []), statement


def test_a_second_up_changes_nothing_and_a_new_admin_key_only_its_version_and_the_dispatcher(
        stack: StackRunner) -> None:
    first, again = full(stack), full(stack)
    assert changed_names(first, again) == []
    rotated = full(stack, {**SECRETS, "voicefleet:dispatcherAdminKeys": "SENTINEL-admin-key-rotated-77aa"})
    # A new version of the same secret (its ARN stays), and the dispatcher's task definition, which pins
    # that version: its new revision is what rolls the service, as for a rotated client key.
    assert changed_names(first, rotated) == [(TASK, "voicefleet-aws-test-dispatcher"),
                                             (VERSION, "voicefleet-aws-test-dispatcher-admin-keys")]
    assert admin_secret_arn(first) == admin_secret_arn(rotated)
