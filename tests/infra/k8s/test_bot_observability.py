"""A k8s stack's bots log JSON and export to the stack's collector, as every other cloud's bots do: the dispatcher's
environment carries LOG_FORMAT and the endpoint, which it tells the pods it makes (tests/dispatcher/machines/
test_k8s_observability.py) and which the agent-sandbox templates carry; the collector's headers are a key of the
bots' Secret (a new value, a new Secret: warm bots replaced), never a plain value; with the team's own Secret each
preview says that Secret holds them, and with k8sCells the stack's Secret, which the cells cannot read, is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config.bot_plain_env import bot_plain_environment
from stacks.config.reader import SettingsError
from stacks.k8s.pool_template import dispatcher_settings
from stacks.tools.mocks import Run, is_secret, unwrap
from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env
from tests.infra.k8s.test_agent_sandbox import DEPLOYER, TEMPLATE, body, dispatcher_env
from tests.infra.k8s.test_bot_secret import KEYS, bots_secrets, keys_secret, secret_name
from tests.infra.k8s.test_bot_secret_keys import POLICY, written
from tests.infra.k8s.test_k8s_cells import cells_run
from tests.infra.k8s.test_stack import masked

ENDPOINT = "https://otlp.example.com"
HEADERS = "api-key=SENTINEL-otlp-headers-77b0"
TRACED = {"otelExporterOtlpEndpoint": ENDPOINT}
SANDBOX = {"k8sMode": "agent-sandbox", "k8sDeployer": DEPLOYER}


def secrets(headers: str | None = HEADERS, keys: dict[str, str] | None = None) -> dict[str, str]:
    return {**ALL_SECRETS, **({"voicefleet:otelExporterOtlpHeaders": headers} if headers else {}),
            **({"voicefleet:botSecrets": json.dumps(keys)} if keys else {})}


def templates_env(run: Run) -> list[dict[str, Any]]:
    """Each SandboxTemplate's bot's env, name -> value (the default pool's and every release's)."""
    found = []
    for template in run.of_type(TEMPLATE):
        (bot,) = body(template)["spec"]["podTemplate"]["spec"]["containers"]
        found.append({entry["name"]: entry.get("value") for entry in bot["env"]})
    return found


@pytest.mark.parametrize("mode", [{}, SANDBOX])
def test_the_dispatcher_has_json_logs_and_the_endpoint_it_tells_its_bots(k8s_stack: K8sRunner,
                                                                        mode: dict[str, str]) -> None:
    env = dispatcher_env(k8s_stack(**TRACED, **mode))
    assert (env["LOG_FORMAT"], env["OTEL_EXPORTER_OTLP_ENDPOINT"]) == ("json", ENDPOINT)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in dispatcher_env(k8s_stack(**mode))


def test_the_bots_are_told_the_plain_settings_every_clouds_bots_get(k8s_stack: K8sRunner,
                                                                     stack_settings: Any) -> None:
    """What the dispatcher tells its pods (and the templates carry) is what the stack sets on the other clouds' bots
    (stacks/config/bot_plain_env.py): the two cannot drift."""
    for config in ({}, {**TRACED, "twilioRegion": "ie1", "twilioEdge": "dublin"}):
        told = dispatcher_settings(dispatcher_env(k8s_stack(**config))).told_bots
        assert told == bot_plain_environment(stack_settings("k8s", secrets=ALL_SECRETS, **config)), config


def test_the_agent_sandbox_templates_carry_json_logs_and_the_endpoint(k8s_stack: K8sRunner) -> None:
    before, after = templates_env(k8s_stack(**SANDBOX)), templates_env(k8s_stack(**SANDBOX, **TRACED))
    assert len(before) >= 2 and len(after) == len(before)  # the default pool's and each release's
    for plain, traced in zip(before, after, strict=True):
        assert plain["LOG_FORMAT"] == "json" and "OTEL_EXPORTER_OTLP_ENDPOINT" not in plain
        assert traced == {**plain, "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}


@pytest.mark.parametrize("mode", [{}, SANDBOX])
def test_the_headers_are_a_key_of_the_bots_secret_never_plain(k8s_stack: K8sRunner, mode: dict[str, str]) -> None:
    run = k8s_stack(secrets=secrets(keys=KEYS), **TRACED, **mode)
    secret = keys_secret(run)
    assert unwrap(secret.inputs)["stringData"] == {**KEYS, "OTEL_EXPORTER_OTLP_HEADERS": HEADERS}
    data = secret.inputs["stringData"]
    assert is_secret(data) or all(is_secret(value) for value in data.values())
    assert dispatcher_env(run)["K8S_BOT_SECRET"] == secret_name(run)
    for template in run.of_type(TEMPLATE):
        (bot,) = body(template)["spec"]["podTemplate"]["spec"]["containers"]
        assert bot["envFrom"] == [{"secretRef": {"name": secret_name(run)}}]
        assert "OTEL_EXPORTER_OTLP_HEADERS" not in {entry["name"] for entry in bot["env"]}
    shown = [(r.type, r.name) for r in run.registrations
             if "SENTINEL-otlp" in json.dumps(masked(r.inputs), default=str)]
    assert shown == []
    assert "SENTINEL-otlp" not in json.dumps(component_outputs(run, "k8s"), default=str) + secret_name(run)


def test_the_headers_alone_make_the_bots_secret(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets=secrets(), **TRACED)
    assert unwrap(keys_secret(run).inputs)["stringData"] == {"OTEL_EXPORTER_OTLP_HEADERS": HEADERS}
    assert dispatcher_env(run)["K8S_BOT_SECRET"] == secret_name(run)


def test_new_headers_are_a_new_secret_a_new_template_and_a_rolled_dispatcher(k8s_stack: K8sRunner) -> None:
    def sandbox(headers: str | None) -> Run:
        return k8s_stack(secrets=secrets(headers, KEYS), **SANDBOX, **TRACED)

    first, again, rotated, without = sandbox(HEADERS), sandbox(HEADERS), sandbox(HEADERS + "-rotated"), sandbox(None)
    assert secret_name(first) == secret_name(again) != secret_name(rotated)
    digests = [component_outputs(run, "k8s")["botTemplate"] for run in (first, again, rotated)]
    assert digests[0] == digests[1] != digests[2]
    assert dispatcher_env(first)["K8S_BOT_SECRET"] != dispatcher_env(rotated)["K8S_BOT_SECRET"]
    # Without the headers the Secret is botSecrets' alone, under the name those keys always had.
    assert secret_name(without) not in (secret_name(first), secret_name(rotated))
    assert unwrap(keys_secret(without).inputs)["stringData"] == KEYS
    assert secret_name(without) == secret_name(k8s_stack(secrets=secrets(None, KEYS), **SANDBOX))


def test_the_teams_own_secret_is_said_to_hold_the_headers_and_may(k8s_stack: K8sRunner,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    run = k8s_stack(secrets=secrets(), k8sBotSecret="team-bot-keys", **TRACED)
    assert bots_secrets(run) == []  # the stack writes none: it never reads or writes the team's
    (note,) = [line for line in said if "otelExporterOtlpHeaders" in line]
    assert "the bots take OTEL_EXPORTER_OTLP_HEADERS from your Secret team-bot-keys (k8sBotSecret)" in note
    assert "SENTINEL" not in note
    # The dispatcher keeps its own headers, by reference.
    assert "valueFrom" in container_env(run)["OTEL_EXPORTER_OTLP_HEADERS"]
    # The keys' admission policy lets the team write that key.
    (found,) = [r for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"].endswith("-bot-secret-keys")]
    team_keys = written({"DEEPGRAM_API_KEY": "eA==", "OTEL_EXPORTER_OTLP_HEADERS": "eA=="})
    assert refusal(unwrap(found.inputs)["spec"], team_keys) is None
    said.clear()
    k8s_stack(k8sBotSecret="team-bot-keys", **TRACED)
    assert [line for line in said if "otelExporterOtlpHeaders" in line] == []  # no headers, nothing to say


def test_cells_with_the_headers_need_the_teams_secret(k8s_stack: K8sRunner) -> None:
    with pytest.raises(SettingsError, match="otelExporterOtlpHeaders reaches the bots as a key of their Secret") as e:
        cells_run(k8s_stack, secrets=secrets(), **TRACED)
    assert "in each cell's namespace and name it in k8sBotSecret" in str(e.value)
    run = cells_run(k8s_stack, secrets=secrets(), k8sBotSecret="team-bot-keys", **TRACED)
    assert bots_secrets(run) == [] and dispatcher_env(run)["K8S_BOT_SECRET"] == "team-bot-keys"
    assert dispatcher_env(cells_run(k8s_stack, **TRACED))["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT
