"""Rotating the AWS store's password without locking out the tasks still running: the RBAC user
holds the new password and, through the deploy that rolls the tasks over, the one it replaces
(`storePreviousPassword`; docs/pulumi.md). Under the recording mocks."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Registration, Run, is_secret, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner

NEW = "SENTINEL-new-store-password-0123456789"
OLD = "SENTINEL-old-store-password-0123456789"
REPLICAS = {**CHANNEL["aws"], "dispatcherCount": "2"}


def deploy(stack: StackRunner, **store_secrets: str) -> Run:
    return stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **store_secrets}, **REPLICAS)


def app_user(run: Run) -> Registration:
    (user,) = [u for u in run.of_type("aws:elasticache/user:User") if unwrap(u.inputs)["userName"] == "voicefleet"]
    return user


def test_during_a_rotation_the_user_takes_the_new_password_and_the_one_it_replaces(stack: StackRunner) -> None:
    run = deploy(stack, **{"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": OLD})
    mode = app_user(run).inputs["authenticationMode"]
    assert unwrap(mode)["passwords"] == [NEW, OLD]  # ElastiCache's most: two
    assert is_secret(mode) or is_secret(mode["passwords"])
    (version,) = [v for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
                  if "redis-password" in v.name]
    assert unwrap(version.inputs)["secretString"] == NEW  # new tasks sign in with the new one


def test_outside_a_rotation_the_user_has_one_password(stack: StackRunner) -> None:
    run = deploy(stack, **{"voicefleet:storePassword": NEW})
    assert unwrap(app_user(run).inputs["authenticationMode"])["passwords"] == [NEW]


def test_the_user_takes_its_passwords_before_any_task_is_handed_the_new_one(stack: StackRunner) -> None:
    """The dispatcher's task definition depends (through the cache's endpoint) on the user, so the
    `up` changes the user's passwords before it registers the tasks that sign in with the new one."""
    run = deploy(stack, **{"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": OLD})
    by_urn = {r.urn: r for r in run.registrations}
    (task,) = [t for t in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
               if t.inputs["family"].endswith("-dispatcher")]
    seen: set[str] = set()
    pending = list(task.dependencies)
    while pending:
        urn = pending.pop()
        if urn not in seen and urn in by_urn:
            seen.add(urn)
            pending.extend(by_urn[urn].dependencies)
    assert app_user(run).urn in seen


@pytest.mark.parametrize(("store_secrets", "problem"), [
    ({"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": NEW}, "is the same as"),
    ({"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": "short"}, "must be 16-128"),
])
def test_a_previous_password_that_cannot_work_is_refused(stack: StackRunner, store_secrets: dict[str, str],
                                                         problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:storePreviousPassword {problem}"):
        deploy(stack, **store_secrets)


def test_a_previous_password_without_a_store_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="storePreviousPassword is set but dispatcherCount=1 has no"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:storePassword": NEW,
                              "voicefleet:storePreviousPassword": OLD}, **CHANNEL["aws"])


def test_a_rotation_left_half_done_is_a_warning_with_the_command_that_finishes_it(stack: StackRunner) -> None:
    """Review 5: storePreviousPassword left set keeps the old password valid for good."""
    from stacks.tools.preflight import store_rotation

    during = deploy(stack, **{"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": OLD})
    (note,) = store_rotation.notes(during.registrations, "aws-prod")
    assert "pulumi config rm storePreviousPassword -s aws-prod" in note and OLD not in note
    assert store_rotation.notes(deploy(stack, **{"voicefleet:storePassword": NEW}).registrations, "aws-prod") == []


def test_a_rotation_left_set_is_a_warning_of_the_program_itself(stack: StackRunner,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up` run directly (not through `python -m stacks.plan`) shows it too."""
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    deploy(stack, **{"voicefleet:storePassword": NEW})
    assert not [w for w in warnings if "storePreviousPassword" in w]
    deploy(stack, **{"voicefleet:storePassword": NEW, "voicefleet:storePreviousPassword": OLD})
    (said,) = [w for w in warnings if "storePreviousPassword" in w]
    assert "pulumi config rm storePreviousPassword" in said and OLD not in said and NEW not in said
