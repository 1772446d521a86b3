"""The stack key → dispatcher setting table (stacks/config/dispatcher_keys.py), which every cloud's
dispatcher environment is built from: an entry added or taken out changes what each cloud it names
gives the dispatcher; against the catalogue, the page and what the example stacks' plans give it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from stacks.config import dispatcher_keys
from stacks.config.derived import derived
from stacks.config.dispatcher_keys import ENTRIES, SECRET, KeySetting, keys_of, markdown_table, plain_environment
from stacks.config.key_table import SECRET_KEYS
from stacks.tools.config_check import stack_envs
from stacks.tools.dispatcher_env import DispatcherEnv, dispatcher_envs
from stacks.tools.mocks import run_program
from stacks.tools.plan import stack_config
from tests.infra.settings_read import read_settings
from voicefleet_settings.names import by_name

ROOT = Path(__file__).resolve().parents[3]
STACKS = ["aws-prod", "gcp-prod", "azure-prod", "k8s-dev"]


@cache
def planned(stack: str) -> tuple[DispatcherEnv, dict[str, str], str]:
    """The stack's dispatcher environment, its keys (namespace left off, size's derivations under
    them) and its cloud."""
    (env,) = stack_envs(stack)
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    keys = {key.removeprefix("voicefleet:"): str(value) for key, value in config.items()}
    sized = {key: value for key, (value, _) in derived(keys.get("size"), keys.get("profile"),
                                                                 cloud=keys["cloud"]).items()}
    return env, {**sized, **keys}, keys["cloud"]


def test_every_entry_names_a_catalogue_setting() -> None:
    assert sorted({e.setting for e in ENTRIES} - set(by_name())) == []


def test_the_pages_table_is_the_code_table() -> None:
    page = (ROOT / "docs" / "pulumi.md").read_text()
    block = page.split("<!-- stack-keys-table:", 1)[1].split("-->", 1)[1].split("<!-- /stack-keys-table -->")[0]
    assert block.strip() == markdown_table().strip(), \
        "paste `python -m stacks.config.dispatcher_keys` into docs/pulumi.md"


@pytest.mark.parametrize("stack", STACKS)
def test_a_key_set_as_is_is_the_settings_value(stack: str) -> None:
    env, keys, cloud = planned(stack)
    checked = 0
    for entry in ENTRIES:
        if entry.same_value and entry.key in keys and (not entry.clouds or cloud in entry.clouds):
            assert entry.setting in env.plain, f"{entry.key} is set but {entry.setting} is not in the env"
            assert float(env.plain[entry.setting]) == float(keys[entry.key]) if keys[entry.key].replace(
                ".", "", 1).isdigit() else env.plain[entry.setting] == keys[entry.key], entry
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("stack", STACKS)
def test_every_key_whose_value_reaches_the_dispatcher_is_in_the_table(stack: str) -> None:
    """A setting no entry maps must not hold a stack key's value: else a key reaches the dispatcher
    unlisted (short values, `1` or `true`, say nothing: too many settings share them)."""
    env, keys, cloud = planned(stack)
    values = {value: key for key, value in keys.items() if len(value) > 3}
    unlisted = {name: values[value] for name, value in env.plain.items()
                if value in values and not keys_of(name, cloud)}
    assert unlisted == {}


# Secrets the program makes from a resource, which no stack key holds: Azure's managed store's own key.
FROM_RESOURCES = {"azure": {"REDIS_PASSWORD"}}


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_the_dispatcher_takes_is_mapped(stack: str) -> None:
    env, _, cloud = planned(stack)
    assert sorted(name for name in env.masked if not keys_of(name, cloud)
                  and name not in FROM_RESOURCES.get(cloud, set())) == []


# For each entry whose setting is derived from its key (not the key's own value), a stack of its cloud, two
# values of the key the program takes, and what else they need: the setting must follow the key. The test
# of `same_value` entries compares values; a derived entry mapped to the wrong setting (botCpu to
# ACI_MEMORY_GB) would pass it and the page's test alike.
# eu is this stack: the URL the plan stands in for its dispatcherDomain.
REGIONS = {"region": "eu", "regions": "eu=https://voicefleet.example.com,us=https://us.example.com"}
REGION_SECRET = {"regionSecret": "a-region-secret-of-32-characters-or-more"}
DERIVED_PROBES: dict[tuple[str, str], tuple[str, dict[str, str], str, str]] = {
    ("profile", "VOICEFLEET_PROFILE"): ("aws-prod", {"botChannel": "true"}, "dev", "prod"),
    ("dashboardEnabled", "DASHBOARD_ENABLED"): ("aws-prod", {}, "false", "true"),
    ("dailyAllowDialout", "DAILY_ALLOW_DIALOUT"): ("aws-prod", {}, "false", "true"),
    ("twilioSignedStreams", "TWILIO_SIGNED_STREAMS"): ("gcp-prod", {}, "false", "true"),
    ("recordingRequired", "RECORDING_REQUIRED"): ("k8s-dev", {}, "false", "true"),
    ("releaseEvalRequired", "RELEASE_EVAL_REQUIRED"): ("gcp-prod", {}, "false", "true"),
    ("turnCredentialsPerKey", "TURN_CREDENTIALS_PER_KEY"): ("aws-prod", {}, "5", "7"),
    ("regions", "REGIONS"): ("aws-prod", {"region": "eu", **REGION_SECRET},
                             REGIONS["regions"], "eu=https://voicefleet.example.com,ap=https://ap.example.com"),
    ("regionHoldForNeighbours", "REGION_HOLD_FOR_NEIGHBOURS"): ("aws-prod", {**REGIONS, **REGION_SECRET},
                                                                "false", "true"),
    ("botCpu", "ECS_TASK_VCPU"): ("aws-prod", {}, "512", "1024"),
    ("botMemory", "ECS_TASK_MEMORY_GB"): ("aws-prod", {}, "2048", "4096"),
    ("dispatcherCount", "BOT_CHANNEL_MAX_CONNECTIONS"): ("aws-prod", {}, "3", "4"),
    ("dispatcherCount", "MAX_CONNECTIONS"): ("aws-prod", {}, "3", "4"),
    ("botCpu", "ACI_CPU"): ("azure-prod", {}, "512", "1024"),
    ("botMemory", "ACI_MEMORY_GB"): ("azure-prod", {}, "2048", "4096"),
    ("gcpZone", "GCE_ZONE"): ("gcp-prod", {}, "europe-west1-b", "europe-west1-c"),
    ("k8sMode", "K8S_MODE"): ("k8s-sandbox-dev", {"k8sAgentSandbox": "adopt"}, "pods", "agent-sandbox"),
    ("usageFiles", "USAGE_FILES"): ("gcp-prod", {"recording": "on"}, "off", "recordings"),
    ("whatsappNumbers", "WHATSAPP_NUMBERS"): ("aws-prod", {"whatsappAccessToken": "t", "whatsappAppSecret": "a",
                                                           "whatsappVerifyToken": "v"},
                                              '{"106540352242922": "support"}', "106540352242922=sales@stable"),
    ("twilioCallers", "TWILIO_CALLERS"): ("aws-prod", {"dispatcherApiKeys": "support:a-client-key,sales:b-client-key"},
                                          '["support"]', '["support", "sales"]'),
    ("twilioDestinations", "TWILIO_DESTINATIONS"): ("aws-prod", {}, '["+1*"]', '["+1*", "+44*"]'),
    ("twilioCallerIds", "TWILIO_CALLER_IDS"): ("gcp-prod", {}, '["+14155550199"]', '["+14155550199", "+442071838750"]'),
    ("telnyxCallers", "TELNYX_CALLERS"): ("gcp-prod", {"dispatcherApiKeys": "support:a-client-key,sales:b-client-key"},
                                          '["sales"]', '["support", "sales"]'),
    ("telnyxDestinations", "TELNYX_DESTINATIONS"): ("azure-prod", {}, '["+49*"]', '["+49*", "+33*"]'),
    ("telnyxCallerIds", "TELNYX_CALLER_IDS"): ("aws-prod", {}, '["+4930901820"]', '["+4930901821"]'),
    ("phoneTransferTargets", "PHONE_TRANSFER_TARGETS"): ("k8s-dev", {}, '["+1415*"]', '["+1415*", "pbx.example.com"]'),
    ("phoneTransferTimeLimitSeconds", "PHONE_TRANSFER_TIME_LIMIT_SECONDS"): ("azure-prod", {}, "0", "900"),
    ("cloudRunCells", "CLOUDRUN_CELLS"): ("gcp-prod", {"botRuntime": "cloudrun", "cloudRunExecutionQuota": "2900"},
                                          '[{"name": "a", "project": "voicefleet-cell-a", '
                                          '"bot_service_account_id": "104000000000000000111"}]',
                                          '[{"name": "b", "project": "voicefleet-cell-b", '
                                          '"bot_service_account_id": "104000000000000000222"}]'),
    ("ecsCells", "ECS_CELLS"): ("aws-prod", {"ecsCellBotTaskRoleArns": '["arn:aws:iam::111111111111:role/cell-bot"]'},
                                '[{"name": "a", "role_arn": "arn:aws:iam::111111111111:role/voicefleet-cell"}]',
                                '[{"name": "b", "role_arn": "arn:aws:iam::111111111111:role/voicefleet-cell"}]'),
    ("gceCells", "GCE_CELLS"): ("gcp-prod", {}, '[{"name": "a", "project": "voicefleet-cell-a"}]',
                                '[{"name": "b", "project": "voicefleet-cell-b"}]'),
    ("k8sCells", "K8S_CELLS"): ("k8s-dev", {},
                                '[{"name": "a", "api_url": "https://10.0.0.1", "token_file": '
                                '"/var/run/cells/a/token", "ca_file": "/var/run/cells/a/ca.crt", "secret": "cell-a"}]',
                                '[{"name": "b", "api_url": "https://10.1.0.1", "token_file": '
                                '"/var/run/cells/b/token", "ca_file": "/var/run/cells/b/ca.crt", "secret": "cell-b"}]'),
    ("aciCells", "ACI_CELLS"): ("azure-prod", {}, '[{"name": "a", "subscription_id": "00000000-0000-0000-0000-'
                                '000000000000", "resource_group": "voicefleet-cell-a", "location": "northeurope"}]',
                                '[{"name": "b", "subscription_id": "00000000-0000-0000-0000-000000000000", '
                                '"resource_group": "voicefleet-cell-b", "location": "northeurope"}]'),
}


@cache
def _plain_env(stack: str, overrides: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The dispatcher's plain settings the table gives from the stack's settings with `overrides` (the secret keys'
    as secrets): the program's own read of them (tests/infra/settings_read.py) and the table's
    plain_environment, which every cloud's dispatcher environment is built from. That each cloud passes the table's
    settings on is held by the plans above and by the test of an entry added below."""
    config, secret_keys = stack_config(stack)
    for key, value in overrides:
        config[f"voicefleet:{key}"] = value
        secret_keys += [f"voicefleet:{key}"] if key in SECRET_KEYS else []
    return plain_environment(read_settings(config, secret_keys, stack=stack))


def _probed(key: str, setting: str) -> tuple[str | None, str | None]:
    """`setting` with the probe's key at its one value, then at its other, everything else alike. The
    probes on the same stack with the same needs share the first run (each of their keys at its one
    value): a read costs 0.2 s of CPU, and the key flipped alone is still all that differs."""
    stack, needs, own, other = DERIVED_PROBES[key, setting]
    base = {**needs, key: own}
    for (k, _), (s, n, one, _) in DERIVED_PROBES.items():
        if s == stack and n == needs and base.get(k, one) == one:
            base[k] = one
    return (_plain_env(stack, tuple(sorted(base.items()))).get(setting),
            _plain_env(stack, tuple(sorted({**base, key: other}.items()))).get(setting))


def test_every_derived_entry_has_a_probe() -> None:
    derived_entries = {(e.key, e.setting) for e in ENTRIES if not e.same_value and e.how != SECRET}
    assert sorted(derived_entries ^ set(DERIVED_PROBES)) == []


@pytest.mark.parametrize(("key", "setting"), sorted(DERIVED_PROBES))
def test_a_derived_setting_follows_its_key(key: str, setting: str) -> None:
    (entry,) = [e for e in ENTRIES if (e.key, e.setting) == (key, setting)]
    at_one, at_other = _probed(key, entry.setting)
    assert at_one != at_other, entry


def test_a_derived_entrys_function_follows_the_settings_it_reads() -> None:
    """The named functions themselves, each probed with two values (the plans above hold the clouds to them)."""

    def value(key: str, setting: str, **settings: object) -> str | None:
        (entry,) = [e for e in ENTRIES if (e.key, e.setting) == (key, setting)]
        assert entry.value is not None
        return entry.value(SimpleNamespace(**settings))  # type: ignore[arg-type]

    assert [value("botCpu", "ECS_TASK_VCPU", aws=SimpleNamespace(bot_cpu=cpu)) for cpu in (512, 4096)] == ["0.5", "4"]
    assert [value("botMemory", "ACI_MEMORY_GB", azure=SimpleNamespace(bot_memory=mib)) for mib in (1536, 8192)] == [
        "1.5", "8"]
    assert [value("k8sMode", "K8S_MODE", kubernetes=SimpleNamespace(mode=mode)) for mode in ("pods", "agent-sandbox")
            ] == [None, "agent-sandbox"]


def _four_clouds() -> dict[str, tuple[DispatcherEnv, dict[str, str]]]:
    """Each cloud's example stack's dispatcher environment, run now (not from a cache), and its config."""
    found = {}
    for stack in STACKS:
        config, secret_keys = stack_config(stack)
        (env,) = dispatcher_envs(run_program(config, secret_keys, stack=stack).registrations)
        found[config["voicefleet:cloud"]] = env, config
    return found


def test_an_entry_added_to_the_table_is_in_every_cloud_it_names_and_a_secret_taken_out_in_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The table says which settings each cloud gives the dispatcher, and which secrets it takes (each
    cloud by reference, its own way): both edits in one run of each cloud's stack (a run costs seconds)."""
    everywhere = KeySetting("maxSessionSeconds", "PROBE_EVERY_CLOUD", "twice its value",
                            value=lambda settings: str(2 * settings.max_session_seconds))
    on_gcp = KeySetting("maxConcurrentSessions", "PROBE_GCP_ONLY", clouds=("gcp",),
                        value=lambda settings: str(settings.max_concurrent_sessions))
    kept = tuple(e for e in ENTRIES if e.setting != "DAILY_API_KEY")
    monkeypatch.setattr(dispatcher_keys, "ENTRIES", (*kept, everywhere, on_gcp))
    clouds = _four_clouds()
    assert sorted(clouds) == ["aws", "azure", "gcp", "k8s"]
    for cloud, (env, config) in clouds.items():
        sessions = int(config.get("voicefleet:maxSessionSeconds", "1800"))
        assert env.plain["PROBE_EVERY_CLOUD"] == str(2 * sessions), cloud
        assert ("PROBE_GCP_ONLY" in env.plain) == (cloud == "gcp"), cloud
        assert "DAILY_API_KEY" not in env.masked | set(env.plain), cloud
        assert "DISPATCHER_API_KEYS" in env.masked, cloud


def test_a_secret_entry_has_no_value_and_every_other_entry_one() -> None:
    with pytest.raises(ValueError, match="a secret has no value"):
        KeySetting("dailyApiKey", "DAILY_API_KEY", SECRET, value=lambda settings: "plain")
    with pytest.raises(ValueError, match="every other entry one"):
        KeySetting("maxSessionSeconds", "MAX_SESSION_SECONDS")
