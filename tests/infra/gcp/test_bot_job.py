"""The Cloud Run bot job (stacks/gcp/bot_job.py) on its own under the recording mocks: one task that
is never retried, the image by digest, its own account, secrets by reference only, and a runner
grant that reaches this job alone, with only what the provider calls."""

from __future__ import annotations

import pulumi
import pytest

from dispatcher.machines.cloudrun.provider import CloudRunSettings
from stacks.gcp import bot_job
from stacks.shared.release_builds import Build
from stacks.tools.mocks import Registration, unwrap
from tests.fakes.cloud_run_jobs import PERMISSIONS as CALLS_NEED
from tests.infra.helpers import of_type, run_component

IMAGE = "europe-docker.pkg.dev/p/r/bot@sha256:" + "a" * 64
DISPATCHER = "serviceAccount:dispatcher@p.iam.gserviceaccount.com"


@pytest.fixture
def job() -> list[Registration]:
    def build() -> None:
        made = bot_job.BotJob("vf-bot", bot_job.BotJobArgs(
            project="p", prefix="vf-prod", account_id="vf-prod-bot",
            region="europe-west1", max_session_seconds=1800, channel_url="wss://d.example/bots/channel",
            environment={"LOG_FORMAT": "json"}))
        made.grant_run("dispatcher", DISPATCHER)
        pulumi.export("job", made.release_job(Build("r-1", "2026-01-01T00:00:00Z", {"bot": IMAGE}), IMAGE))

    return run_component(build)


def test_one_task_never_retried_the_image_by_digest_as_its_own_account(job: list[Registration]) -> None:
    (resource,) = of_type(job, "gcp:cloudrunv2/job:Job")
    inputs = unwrap(resource.inputs)
    template = inputs["template"]
    assert (template["taskCount"], template["parallelism"]) == (1, 1)
    task = template["template"]
    assert task["maxRetries"] == 0  # the API's default (3) would run a failed bot into a finished session
    assert task["timeout"] == f"{1800 + bot_job.BotJobArgs.grace_seconds}s"
    (container,) = task["containers"]
    assert container["name"] == bot_job.CONTAINER == CloudRunSettings.container  # what the overrides name
    assert container["image"] == IMAGE
    env = {e["name"]: e.get("value") for e in container["envs"]}
    assert env == {"BOT_CHANNEL_URL": "wss://d.example/bots/channel", "LOG_FORMAT": "json", "BOT_TURN_TRANSPORT": "tcp"}
    # the host refuses any other variable a run's overrides add (bot/environment_check.py)
    assert container["commands"] == bot_job.job_command(env)
    assert "BOT_TURN_TRANSPORT" in container["commands"][container["commands"].index("-X") + 1]
    (account,) = of_type(job, "gcp:serviceaccount/account:Account")
    assert unwrap(account.inputs)["accountId"] == "vf-prod-bot"
    assert task["serviceAccount"].startswith("vf-prod-bot@")  # the job's own account, not the default one


def test_the_runner_grant_is_on_this_job_only_with_only_the_providers_calls(job: list[Registration]) -> None:
    (role,) = of_type(job, "gcp:projects/iAMCustomRole:IAMCustomRole")
    assert sorted(unwrap(role.inputs)["permissions"]) == sorted(bot_job.RUN_PERMISSIONS)
    assert "run.jobs.runWithOverrides" in bot_job.RUN_PERMISSIONS
    # Exactly what the fake API asks of each call the provider makes (a run, an execution read, listed
    # and cancelled, its tasks listed), under which the dispatcher's tests pass: nothing more.
    assert set(bot_job.RUN_PERMISSIONS) == CALLS_NEED
    (binding,) = of_type(job, "gcp:cloudrunv2/jobIamMember:JobIamMember")
    assert unwrap(binding.inputs)["member"] == DISPATCHER
    project_bindings = [unwrap(r.inputs) for r in of_type(job, "gcp:projects/iAMMember:IAMMember")]
    assert all(b["member"] != DISPATCHER for b in project_bindings)  # nothing project-wide for the dispatcher
    assert of_type(job, "gcp:serviceaccount/iAMMember:IAMMember") == []  # nobody may act as or mint for the bot


def test_the_jobs_account_holds_no_registry_or_logging_grant(job: list[Registration]) -> None:
    """In its own project Cloud Run's service agent pulls the image and Cloud Run writes the container's
    logs: the bots' account, which a bot's code holds, gets neither (a VM's account needs both)."""
    assert of_type(job, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") == []
    roles = {unwrap(r.inputs)["role"] for r in of_type(job, "gcp:projects/iAMMember:IAMMember")}
    assert not roles & {"roles/logging.logWriter", "roles/artifactregistry.reader"}
