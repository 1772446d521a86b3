"""A misspelt setting is named with the setting it meant, for every setting and each common slip,
and the variables a real deployment's environment holds beside voicefleet's raise no alarm."""

from __future__ import annotations

import pytest

from dispatcher.settings.typos import edits, misspelt, nearest
from voicefleet_settings.catalogue import SETTINGS
from voicefleet_settings.names import by_name

NAMES = sorted(s.name for s in SETTINGS)


def slips(name: str) -> dict[str, str]:
    """One letter dropped, two neighbours swapped, one letter doubled, in the middle of the name."""
    middle = len(name) // 2
    found = {"dropped": name[:middle] + name[middle + 1:], "doubled": name[:middle] + name[middle] + name[middle:]}
    if name[middle] != name[middle + 1]:
        found["swapped"] = name[:middle] + name[middle + 1] + name[middle] + name[middle + 2:]
    return {kind: slip for kind, slip in found.items() if slip not in by_name()}  # a slip into another real name


@pytest.mark.parametrize("name", NAMES)
def test_each_slip_names_the_setting_meant(name: str) -> None:
    assert {kind: nearest(slip) for kind, slip in slips(name).items()} == dict.fromkeys(slips(name), name)


def test_the_reported_line_names_both() -> None:
    assert misspelt({"RESERVE_MAX_IDEL": "3", "PORT": "8080"}) == [
        "RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?"]


def test_the_distance_counts_a_swap_as_one_edit() -> None:
    assert edits("RESERVE_MAX_IDEL", "RESERVE_MAX_IDLE") == 1
    assert edits("PORT", "PRT") == 1 and edits("HOST", "HOME") == 2 and edits("", "AB") == 2


# What a dispatcher's environment holds beside its own settings: a shell's, a container's, each cloud's
# and platform's, the SDKs', the bot's service keys, CI's.
REAL_ENVIRONMENT = """
PATH HOME USER SHELL LANG LC_ALL TERM PWD OLDPWD HOSTNAME TZ TMPDIR VIRTUAL_ENV UV_CACHE_DIR PYTHONUNBUFFERED
PYTHONPATH PYTHONDONTWRITEBYTECODE PYTHONHASHSEED AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_EXECUTION_ENV AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
ECS_CONTAINER_METADATA_URI ECS_CONTAINER_METADATA_URI_V4 ECS_AGENT_URI ECS_ENABLE_CONTAINER_METADATA
ECS_CONTAINER_STOP_TIMEOUT FLY_APP_NAME FLY_REGION FLY_MACHINE_ID FLY_ALLOC_ID FLY_PUBLIC_IP FLY_PRIVATE_IP
FLY_IMAGE_REF FLY_VM_MEMORY_MB FLY_PROCESS_GROUP FLY_MACHINE_VERSION KUBERNETES_SERVICE_HOST
KUBERNETES_SERVICE_PORT KUBERNETES_SERVICE_PORT_HTTPS KUBERNETES_PORT KUBERNETES_PORT_443_TCP
KUBERNETES_PORT_443_TCP_ADDR K_SERVICE K_REVISION K_CONFIGURATION CLOUD_RUN_JOB CLOUD_RUN_EXECUTION
CLOUD_RUN_TASK_INDEX CLOUD_RUN_TASK_COUNT CLOUD_RUN_TASK_ATTEMPT GOOGLE_APPLICATION_CREDENTIALS
GOOGLE_CLOUD_PROJECT GCE_METADATA_HOST AZURE_CLIENT_ID AZURE_TENANT_ID AZURE_FEDERATED_TOKEN_FILE
AZURE_AUTHORITY_HOST IDENTITY_ENDPOINT IDENTITY_HEADER MSI_ENDPOINT MSI_SECRET MODAL_TASK_ID MODAL_ENVIRONMENT
MODAL_PROFILE MODAL_SERVER_URL OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_EXPORTER_OTLP_HEADERS
OTEL_EXPORTER_OTLP_TIMEOUT OTEL_EXPORTER_OTLP_COMPRESSION OTEL_BSP_SCHEDULE_DELAY OTEL_TRACES_SAMPLER
OTEL_TRACES_SAMPLER_ARG OTEL_LOGS_EXPORTER OTEL_METRICS_EXPORTER DEEPGRAM_API_KEY OPENAI_API_KEY
CARTESIA_API_KEY ELEVENLABS_API_KEY ANTHROPIC_API_KEY GOOGLE_API_KEY GROQ_API_KEY CARTESIA_VOICE_ID OPENAI_MODEL
CI GITHUB_ACTIONS GITHUB_SHA GITHUB_REF RUNNER_OS DOCKER_HOST SSL_CERT_FILE REQUESTS_CA_BUNDLE HTTP_PROXY
HTTPS_PROXY NO_PROXY http_proxy no_proxy REDIS_HOST REDIS_PORT FORWARDED_ALLOW_IPS WEB_CONCURRENCY DEBUG ENV
NODE_ENV SHLVL COLUMNS LINES EDITOR PAGER LESS MAIL LOGNAME XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS
SSH_AUTH_SOCK DISPLAY TINI_SUBREAPER PULUMI_ACCESS_TOKEN PULUMI_CONFIG_PASSPHRASE DAILY_SAMPLE_ROOM_URL
TWILIO_ACCOUNT_SID TWILIO_API_KEY TELNYX_API_KEY PLIVO_AUTH_ID EXOTEL_SID LOG_CONFIG BOT_NAME BOT_VOICE
""".split()


def test_a_real_environment_raises_no_alarm() -> None:
    env = dict.fromkeys(REAL_ENVIRONMENT, "x") | {"PORT": "8080", "MACHINES": "ecs", "RESERVE_MIN_IDLE": "2"}
    assert misspelt(env) == []


def test_a_bot_variable_handed_on_is_the_bots() -> None:
    """`LOCAL_BOT_ENV` names the bot's own variables: one close to a setting's name is still the bot's."""
    assert misspelt({"LOCAL_BOT_ENV": "BOT_FILES", "BOT_FILES": "x"}) == []
    assert misspelt({"BOT_FILES": "x"}) == ["BOT_FILES is no setting: did you mean BOT_FILE?"]


def _aws_service_endpoint_variables() -> list[str]:
    """`AWS_ENDPOINT_URL_<SERVICE>` for every service the installed botocore knows (a LocalStack setup, or
    a VPC endpoint's, sets several): the SDK's own service-specific endpoint variables."""
    import botocore.session

    session = botocore.session.get_session()
    variables = []
    for name in session.get_available_services():
        service_id = session.get_service_model(name).service_id
        variables.append("AWS_ENDPOINT_URL_" + service_id.replace(" ", "_").replace("-", "_").upper())
    return variables


def test_the_sdks_own_variables_are_theirs() -> None:
    """Each AWS service's endpoint variable (AWS_ENDPOINT_URL_SQS is one letter from our
    AWS_ENDPOINT_URL_STS) and google-auth's GCE_METADATA_ROOT (beside our GCE_METADATA_HOST) would stop
    a `prod` start if taken for misspellings."""
    env = dict.fromkeys([*_aws_service_endpoint_variables(), "GCE_METADATA_ROOT", "GCE_METADATA_IP"], "x")
    assert "AWS_ENDPOINT_URL_SQS" in env and "AWS_ENDPOINT_URL_EC2" in env
    assert misspelt(env) == []
    assert misspelt({"AWS_ENDPOINT_URL_S4": "x"}) == []  # the family is the SDK's: not ours to judge
    assert misspelt({"AWS_REGOIN": "x"}) == ["AWS_REGOIN is no setting: did you mean AWS_REGION?"]


def test_a_stack_keys_spelling_in_the_environment_names_the_setting() -> None:
    """`maxConcurrentSessions=3` (how a stack file spells it) would be ignored by every reader of the environment."""
    assert misspelt({"maxConcurrentSessions": "3", "reserveMinIdle": "1", "path": "/bin", "PORT": "8080"}) == [
        "maxConcurrentSessions is no setting: did you mean MAX_CONCURRENT_SESSIONS? (maxConcurrentSessions is how a "
        "stack file spells it)",
        "reserveMinIdle is no setting: did you mean RESERVE_MIN_IDLE? (reserveMinIdle is how a stack file spells it)"]


def test_explain_of_a_stack_keys_spelling_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from dispatcher.serving.config_command import main

    assert main(["explain", "maxConcurrentSessions"], environ={}) == 2
    assert "did you mean MAX_CONCURRENT_SESSIONS?" in capsys.readouterr().err
