"""A local bot's environment is an allow list: the system's, the bot host's, the user's named
variables, its launch values; never the dispatcher's own (tests/security/test_local_bot_isolation.py
attacks it with a real dispatcher and real bots)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from botchannel.contract import (
    CHANNEL_TOKEN_VARIABLE,
    CHANNEL_URL_VARIABLE,
    IDENTITY_FD_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
)
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.bot_environment import SESSION_VARIABLES
from dispatcher.machines.local import isolation
from dispatcher.machines.local.bot_env import allowed
from dispatcher.machines.local.provider import LocalSettings, _bot_environment
from dispatcher.settings import SettingsError
from tests.docs.env_reads import environment_reads

ROOT = Path(__file__).resolve().parents[3]
SPEC = LaunchSpec(session_id="0123456789abcdef01234567", body_digest="d" * 32, max_session_seconds=60)
# Read by the bot host but never inherited: the launcher sets them per bot, or a cloud sets them.
# A local bot's identity (BOT_IDENTITY=local) names its own launch socket.
SET_PER_BOT = {*SESSION_VARIABLES, CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE, MACHINE_ID_VARIABLE, IMAGE_VARIABLE,
               IDENTITY_VARIABLE, IDENTITY_FD_VARIABLE}
# Set by a cloud provider or its launch values.
CLOUD_ONLY = {"FLY_MACHINE_ID", "GCE_METADATA_HOST", "BOT_FLY_API_SOCKET",
              # an ECS task's role credentials and region (BOT_IDENTITY=ecs)
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_STS",
              # a Modal Sandbox's OIDC identity token (BOT_IDENTITY=modal)
              "MODAL_IDENTITY_TOKEN", "MODAL_IDENTITY_TOKEN_FILE",
              # a Kubernetes pod's projected ServiceAccount token (BOT_IDENTITY=k8s)
              "BOT_K8S_TOKEN_FILE",
              # a Kubernetes pod's name, its containers' hostname: a warm pool bot's machine id (BOT_IDENTITY=k8s)
              "HOSTNAME",
              # a Cloud Run execution's name and nonce, and its media over TURN/TCP (the stack sets it)
              "CLOUD_RUN_EXECUTION", "VOICEFLEET_EXECUTION_NONCE", "BOT_TURN_TRANSPORT",
              # read only to refuse them: an isolated bot host will not start with these set
              "BROWSER", "LD_AUDIT", "LD_PRELOAD"}


def test_a_variable_reaches_a_local_bot_only_when_allowed_or_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "BOT_LOG_LEVEL": "DEBUG", "DEEPGRAM_API_KEY": "dg",
                        "A_SECRET_ADDED_NEXT_YEAR": "s", "TWILIO_AUTH_TOKEN": "t", "REDIS_URL": "redis://:pw@h"}.items():
        monkeypatch.setenv(name, value)
    plain = _bot_environment(SPEC, None, ())
    assert {"PATH", "LC_ALL", "BOT_LOG_LEVEL"} <= set(plain)
    assert not {"DEEPGRAM_API_KEY", "A_SECRET_ADDED_NEXT_YEAR", "TWILIO_AUTH_TOKEN", "REDIS_URL"} & set(plain)
    named = _bot_environment(SPEC, None, ("DEEPGRAM_API_KEY", "TWILIO_AUTH_TOKEN", "REDIS_URL"))
    assert named["DEEPGRAM_API_KEY"] == "dg" and named["TWILIO_AUTH_TOKEN"] == "t"  # the user's choice
    assert "REDIS_URL" not in named  # the dispatcher's, even if named by a caller that skipped the settings
    assert named["VOICEFLEET_SESSION_ID"] == SPEC.session_id  # the launch values come on top


@pytest.mark.parametrize("name", ["REDIS_URL", "REDIS_MESSAGE_SECRET",
                                  "BOT_CHANNEL_TOKEN", "DISPATCHER_API_KEYS", "PHONE_TOKEN_SECRET",
                                  "TURN_SHARED_SECRET", "VOICEFLEET_BODY", "DAILY_TOKEN", "WEBHOOK_SECRET",
                                  "TWILIO_API_KEY_SECRET", "TELNYX_TRANSFER_API_KEY", "NOT-A-NAME"])
def test_local_bot_env_cannot_name_the_dispatchers_own_variables(name: str) -> None:
    with pytest.raises(SettingsError, match="LOCAL_BOT_ENV"):
        LocalSettings.from_env({"LOCAL_BOT_ENV": f"DEEPGRAM_API_KEY,{name}"})
    assert LocalSettings.from_env({"LOCAL_BOT_ENV": " DEEPGRAM_API_KEY, OPENAI_API_KEY ,"}).bot_env == (
        "DEEPGRAM_API_KEY", "OPENAI_API_KEY")


def test_the_isolation_policy_is_auto_or_required() -> None:
    assert LocalSettings.from_env({}).isolation == "auto"
    with pytest.raises(SettingsError, match="LOCAL_BOT_ISOLATION"):
        LocalSettings.from_env({"LOCAL_BOT_ISOLATION": "off"})


def test_every_variable_the_bot_host_reads_reaches_a_local_bot() -> None:
    """A setting added to the bot host is added to the allow list too, or local bots never see it."""
    read = environment_reads([ROOT / "bot", ROOT / "botchannel"])
    assert {"BOT_FILE", "BOT_LOG_LEVEL", "VOICEFLEET_ICE_LOOPBACK"} <= set(read)  # control: the scan sees them
    withheld = sorted(name for name in read if name not in SET_PER_BOT | CLOUD_ONLY and not allowed(name, ()))
    assert withheld == []


def test_yama_s_ptrace_scope_is_read_as_the_kernel_holds_it_and_0_where_there_is_no_yama(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scope = tmp_path / "ptrace_scope"
    monkeypatch.setattr(isolation, "YAMA_PTRACE_SCOPE", str(scope))
    assert isolation.ptrace_scope() == 0  # no Yama: any process of the user may attach
    for held, read in (("0\n", 0), ("1\n", 1), ("3\n", 3), ("junk\n", 0)):
        scope.write_text(held)
        assert isolation.ptrace_scope() == read
    assert isolation.ptrace_scope_needed() == (3 if os.geteuid() == 0 else 1)


@pytest.mark.parametrize("name", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS",
                                  "AZURE_CLIENT_SECRET", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AZURE_FEDERATED_TOKEN_FILE",
                                  # google-auth's gcloud folder; MSAL's managed identity endpoints
                                  "CLOUDSDK_CONFIG", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT",
                                  "AZURE_POD_IDENTITY_AUTHORITY_HOST"])
def test_a_cloud_sdks_credential_is_refused_at_start_as_a_stack_refuses_it(name: str) -> None:
    """The laptop says what `pulumi preview` would: the deployed bot's access is botPermissions."""
    with pytest.raises(SettingsError, match=f"LOCAL_BOT_ENV: {name} is the .* SDK's own credential variable.*"
                                            "voicefleet:botPermissions.*home folder"):
        LocalSettings.from_env({"LOCAL_BOT_ENV": f"DEEPGRAM_API_KEY,{name}"})


def test_a_setting_that_only_shares_a_clouds_prefix_is_the_teams() -> None:
    assert LocalSettings.from_env({"LOCAL_BOT_ENV": "AWS_BUCKET_NAME,AWS_REGION"}).bot_env == (
        "AWS_BUCKET_NAME", "AWS_REGION")


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHOME", "PYTHONPATH", "PATH", "BASH_ENV",
                                  # what the bot host proves its machine with (bot/identity.py)
                                  "AWS_ENDPOINT_URL_STS", "BOT_K8S_TOKEN_FILE", "BOT_FLY_API_SOCKET",
                                  "MODAL_IDENTITY_TOKEN_FILE", "FLY_MACHINE_ID", "BOT_CHANNEL_CA"])
def test_what_chooses_the_code_the_bot_process_runs_or_proves_is_not_the_teams(name: str) -> None:
    with pytest.raises(SettingsError, match=f"LOCAL_BOT_ENV: {name} "):
        LocalSettings.from_env({"LOCAL_BOT_ENV": f" {name} "})
    assert LocalSettings.from_env({"LOCAL_BOT_ENV": "PYTHONUNBUFFERED"}).bot_env == ("PYTHONUNBUFFERED",)


def test_a_named_variable_the_dispatcher_lacks_is_said_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="dispatcher.machines.local.provider"):
        settings = LocalSettings.from_env({"LOCAL_BOT_ENV": "DEEPGRAM_API_KEY,OPENAI_API_KEY",
                                           "OPENAI_API_KEY": "sk-test"})
    assert settings.bot_env == ("DEEPGRAM_API_KEY", "OPENAI_API_KEY")
    (record,) = caplog.records
    assert "LOCAL_BOT_ENV names DEEPGRAM_API_KEY," in record.getMessage()
    assert "OPENAI_API_KEY" not in record.getMessage() and "sk-test" not in record.getMessage()
