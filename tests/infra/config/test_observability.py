"""Observability in the stacks: the dispatcher and the bots log JSON; the trace collector and the
webhook receiver, when the stack config names them, reach both (the collector) or the dispatcher
(the webhooks), their secrets by reference only; bad values are refused naming the key."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from stacks.config.observability import ObservabilitySettings
from stacks.gcp.startup import STARTUP_SCRIPT
from stacks.shared import contract
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.helpers import container, unwrap

ENDPOINT = "https://otlp.example.com"
WEBHOOK = "https://hooks.example.com/voicefleet"
HEADERS = "api-key=SENTINEL-otlp-headers-9d2e"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"SENTINEL-webhook-secret-32-bytes").decode()
OBSERVABILITY = {"voicefleet:otelExporterOtlpHeaders": HEADERS, "voicefleet:webhookSecret": WEBHOOK_SECRET}


def env_of(definition: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["environment"]}


def test_by_default_the_dispatcher_and_the_bot_log_json_and_export_nothing(stack: StackRunner) -> None:
    run = stack("aws")
    for suffix in ("-dispatcher", "-bot"):
        env = env_of(container(run, suffix))
        assert env["LOG_FORMAT"] == "json", suffix
        assert not {"OTEL_EXPORTER_OTLP_ENDPOINT", "WEBHOOK_URL"} & set(env), suffix


def test_aws_the_collector_reaches_the_dispatcher_and_the_bots_and_the_webhooks_the_dispatcher(
        stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **OBSERVABILITY}, otelExporterOtlpEndpoint=ENDPOINT, webhookUrl=WEBHOOK)
    dispatcher, bot = container(run, "-dispatcher"), container(run, "-bot")
    assert (env_of(dispatcher)["OTEL_EXPORTER_OTLP_ENDPOINT"], env_of(dispatcher)["WEBHOOK_URL"]) == (ENDPOINT, WEBHOOK)
    assert {s["name"] for s in dispatcher["secrets"]} >= {"OTEL_EXPORTER_OTLP_HEADERS", "WEBHOOK_SECRET"}
    assert env_of(bot)["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT and "WEBHOOK_URL" not in env_of(bot)
    bot_secrets = {s["name"] for s in bot["secrets"]}
    assert "OTEL_EXPORTER_OTLP_HEADERS" in bot_secrets and "WEBHOOK_SECRET" not in bot_secrets  # the bot's need only
    # The values only ever reach the secret store; the containers name them by reference.
    for sentinel in ("SENTINEL-otlp-headers-9d2e", WEBHOOK_SECRET):
        holding = {r.type for r in run.registrations if sentinel in json.dumps(unwrap(r.inputs))}
        assert holding == {"aws:secretsmanager/secretVersion:SecretVersion"}, sentinel
    # Every key the dispatcher gets is one the contract names.
    keys = set(env_of(dispatcher)) | {s["name"] for s in dispatcher["secrets"]}
    assert keys == set(contract.ECS_ENV + contract.DISPATCHER_SECRETS + contract.OTLP_ENV + contract.OTLP_SECRETS
                       + contract.WEBHOOK_ENV + contract.WEBHOOK_SECRETS)


def test_gcp_the_collector_reaches_cloud_run_and_the_bot_vms(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **OBSERVABILITY}, otelExporterOtlpEndpoint=ENDPOINT, webhookUrl=WEBHOOK)
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    envs = {e["name"]: e for e in service.inputs["template"]["containers"][0]["envs"]}
    values = [envs[name]["value"] for name in ("LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "WEBHOOK_URL")]
    assert values == ["json", ENDPOINT, WEBHOOK]
    for secret in ("OTEL_EXPORTER_OTLP_HEADERS", "WEBHOOK_SECRET"):
        assert "valueSource" in envs[secret] and "value" not in envs[secret]
    (template,) = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    metadata = unwrap(template.inputs["metadata"])
    assert metadata[contract.GCE_SETTINGS_METADATA_KEY] == f"LOG_FORMAT=json,OTEL_EXPORTER_OTLP_ENDPOINT={ENDPOINT}"
    assert "OTEL_EXPORTER_OTLP_HEADERS=" in metadata[contract.GCE_SECRETS_METADATA_KEY]  # a version name, no value
    assert "SENTINEL-otlp-headers" not in json.dumps(metadata)


def test_the_startup_script_writes_the_bots_settings_into_its_env_file(tmp_path: Path) -> None:
    fragment = re.search(r"\nfor setting in [^\n]*\n(?:  [^\n]*\n)+done\n", STARTUP_SCRIPT)
    assert fragment is not None
    env_file = tmp_path / "bot.env"
    metadata = f'case "$1" in bot-settings) printf "LOG_FORMAT=json,OTEL_EXPORTER_OTLP_ENDPOINT={ENDPOINT}";; esac'
    script = f"set -euo pipefail\nENV_FILE={env_file}\n: > $ENV_FILE\nmd() {{ {metadata}; }}\n" + fragment.group(0)
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    assert env_file.read_text() == f"LOG_FORMAT=json\nOTEL_EXPORTER_OTLP_ENDPOINT={ENDPOINT}\n"


@pytest.mark.parametrize("url", ["https://otlp.example.com", "https://otlp.example.com:443/v1"])
def test_an_https_endpoint_on_443_is_accepted(stack: StackRunner, url: str) -> None:
    run = stack("aws", otelExporterOtlpEndpoint=url)
    assert env_of(container(run, "-bot"))["OTEL_EXPORTER_OTLP_ENDPOINT"] == url


@pytest.mark.parametrize(("secrets", "config", "message"), [
    ({}, {"webhookUrl": WEBHOOK}, "webhookUrl is set together with webhookSecret"),
    ({"voicefleet:webhookSecret": WEBHOOK_SECRET}, {}, "webhookSecret is set together with webhookUrl"),
    ({}, {"webhookUrl": "ftp://hooks.example.com"}, "webhookUrl must be an http"),
    # The stacks' egress rules open TCP 443 only: a collector on OTLP's 4318 or a plain-http receiver
    # would never be reached from the bots (both clouds) or the AWS dispatcher.
    ({}, {"otelExporterOtlpEndpoint": "https://otlp.example.com:4318"},
     "otelExporterOtlpEndpoint must be https on port 443 (or no port): the stack's egress rules"),
    ({"voicefleet:webhookSecret": WEBHOOK_SECRET}, {"webhookUrl": "http://hooks.example.com/voicefleet"},
     "webhookUrl must be https on port 443"),
    ({"voicefleet:webhookSecret": WEBHOOK_SECRET}, {"webhookUrl": "https://hooks.example.com:8443/x"},
     "webhookUrl must be https on port 443"),
    ({}, {"otelExporterOtlpEndpoint": "https://otlp.example.com:99999"}, "with a valid port"),
    # A credential in the URL would be plain in the stack file and every environment that gets it.
    ({}, {"otelExporterOtlpEndpoint": "https://user:pw@otlp.example.com"},
     "otelExporterOtlpEndpoint holds a user or password before its host (user:password@)"),
    ({"voicefleet:webhookSecret": WEBHOOK_SECRET}, {"webhookUrl": "https://user:pw@hooks.example.com:99999/x"},
     "webhookUrl holds a user or password before its host"),
    ({}, {"otelExporterOtlpEndpoint": "https://a.example.com,https://b.example.com"}, "otelExporterOtlpEndpoint must"),
    ({"voicefleet:otelExporterOtlpHeaders": HEADERS}, {},
     "otelExporterOtlpHeaders is set with otelExporterOtlpEndpoint"),
    ({"voicefleet:webhookSecret": "whsec_c2hvcnQ="}, {"webhookUrl": WEBHOOK}, "webhookSecret must be `whsec_`"),
    # a character outside base64 is refused, as the dispatcher refuses it, not skipped over
    ({"voicefleet:webhookSecret": WEBHOOK_SECRET.replace("_", "_*", 1)}, {"webhookUrl": WEBHOOK},
     "webhookSecret must be `whsec_`"),
])
def test_bad_observability_settings_are_refused_naming_the_key(stack: StackRunner, secrets, config, message) -> None:
    with pytest.raises(Exception, match=re.escape(message)):
        stack("aws", secrets={**SECRETS, **secrets}, **config)


def test_a_url_with_a_password_is_refused_without_showing_it(stack: StackRunner) -> None:
    with pytest.raises(Exception, match="otelExporterOtlpHeaders") as refused:
        stack("aws", otelExporterOtlpEndpoint="https://user:SENTINEL-otlp-password@otlp.example.com:99999")
    assert "SENTINEL" not in str(refused.value)


def test_settings_without_a_collector_or_webhooks_ask_for_no_secret() -> None:
    # the stacks' default when the config names neither: no secret reference the secret store lacks
    settings = ObservabilitySettings()
    assert settings.dispatcher_secret_names() == () and settings.bot_secret_names() == ()
