"""Where a setting's value comes from: default < size and profile < the file < the environment; the
start refuses a misspelt setting under `prod`; `voicefleet config` reads it all as a start would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher import __main__ as dispatcher_main
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.serving import config_command
from dispatcher.settings import Settings, sources, typos
from dispatcher.settings.derived import PROFILES, SIZES
from dispatcher.settings.sources import SourceError, resolve
from voicefleet_settings.names import by_name

# The least ACI's parser needs; its image by digest, as it requires.
ACI_REQUIRED = {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_RESOURCE_GROUP": "g", "AZURE_LOCATION": "westeurope",
                "ACI_BOT_IMAGE": "r.azurecr.io/bot@sha256:" + "0" * 64}


def test_unset_changes_nothing() -> None:
    resolved = resolve({"PORT": "9000"})
    assert resolved.env == {"PORT": "9000"} and resolved.profile == "dev" and resolved.size is None
    assert resolved.source("PORT") == "environment" and resolved.source("HOST") == "default"


def test_a_size_sets_defaults_and_an_explicit_value_wins(tmp_path: Path) -> None:
    config = tmp_path / "voicefleet.toml"
    config.write_text('RESERVE_MAX_IDLE = 30\nLOG_FORMAT = "text"\n')
    resolved = resolve({"VOICEFLEET_SIZE": "large", "VOICEFLEET_PROFILE": "prod", "VOICEFLEET_CONFIG": str(config),
                        "MAX_CONCURRENT_SESSIONS": "200"})
    assert resolved.env["MAX_CONCURRENT_SESSIONS"] == "200"
    assert resolved.source("MAX_CONCURRENT_SESSIONS") == "environment"
    assert resolved.env["RESERVE_MAX_IDLE"] == "30" and resolved.source("RESERVE_MAX_IDLE") == "file"
    assert resolved.env["LOG_FORMAT"] == "text"  # the file's, over the profile's json
    assert resolved.env["SESSION_WAITS"] == "2000" and resolved.source("SESSION_WAITS") == "size large"
    assert resolved.env["DASHBOARD_ENABLED"] == "0" and resolved.source("DASHBOARD_ENABLED") == "profile prod"
    settings = Settings.from_env({**resolved.env, "HOST": "127.0.0.1"})  # the parsers read it as they always did
    assert settings.max_concurrent_sessions == 200 and settings.max_connections == 8000


def test_what_sizes_and_profiles_derive_are_settings_the_parsers_accept() -> None:
    for values in [*SIZES.values(), *PROFILES.values()]:
        assert sorted(set(values) - set(by_name())) == []
    for size in SIZES:  # the dispatcher's own cross-checks (connections above channels and waits) hold
        Settings.from_env(resolve({"VOICEFLEET_SIZE": size}).env)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_each_size_is_a_bot_size_the_providers_accept(size: str) -> None:
    """Each provider's own parser (its pairs of CPU and memory) takes what a size derives."""
    env = resolve({"VOICEFLEET_SIZE": size}).env
    fly = FlySettings.from_env({**env, "FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i"})
    modal = ModalSettings.from_env({**env, "MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1", "MODAL_APP": "a",
                                    "MODAL_BOT_IMAGE": "im-1"})
    aci = AciSettings.from_env({**env, **ACI_REQUIRED})
    assert fly.memory_mb == int(SIZES[size]["FLY_GUEST_MEMORY_MB"])
    assert modal.memory_mb == int(SIZES[size]["MODAL_MEMORY_MB"])
    assert aci.memory_gb == float(SIZES[size]["ACI_MEMORY_GB"])


def test_the_small_size_is_the_defaults() -> None:
    known = by_name()
    assert {name: value for name, value in SIZES["small"].items() if known[name].default != value} == {}


def test_a_yaml_file_reads_alike(tmp_path: Path) -> None:
    config = tmp_path / "voicefleet.yaml"
    config.write_text("MAX_CONCURRENT_SESSIONS: 40\nCORS_ALLOW_ORIGINS: [https://a.example, https://b.example]\n")
    env = resolve({"VOICEFLEET_CONFIG": str(config)}).env
    assert env["MAX_CONCURRENT_SESSIONS"] == "40"
    assert env["CORS_ALLOW_ORIGINS"] == "https://a.example,https://b.example"


@pytest.mark.parametrize(("text", "fault"), [
    ("RESERVE_MAX_IDEL = 3\n", "RESERVE_MAX_IDEL is no setting (did you mean RESERVE_MAX_IDLE?)"),
    ("NOT_EVEN_CLOSE = 3\n", "NOT_EVEN_CLOSE is no setting"),
    ("PORT = [\n", "not valid"),
    ('REDIS_URL = "redis://u:p@h"\n', "REDIS_URL is a secret: set it in the environment, from a secret store"),
    ("PORT = {a = 1}\n", "PORT must be text, a number, true/false or a list of them"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, fault: str) -> None:
    config = tmp_path / "voicefleet.toml"
    config.write_text(text)
    with pytest.raises(SourceError) as caught:
        resolve({"VOICEFLEET_CONFIG": str(config)})
    assert str(caught.value).startswith(f"VOICEFLEET_CONFIG={config}: ") and fault in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unknown_size_or_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="VOICEFLEET_SIZE='huge' is not one of small, medium, large"):
        resolve({"VOICEFLEET_SIZE": "huge"})
    with pytest.raises(SourceError, match="VOICEFLEET_PROFILE='staging' is not one of dev, prod"):
        resolve({"VOICEFLEET_PROFILE": "staging"})
    with pytest.raises(SourceError, match="cannot read it"):
        resolve({"VOICEFLEET_CONFIG": str(tmp_path / "absent.toml")})


def test_prod_stops_the_start_on_a_misspelt_setting(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VOICEFLEET_PROFILE", "prod")
    monkeypatch.setenv("DISPATCHER_API_KEYS", "k" * 24)
    monkeypatch.setenv("RESERVE_MAX_IDEL", "3")
    assert dispatcher_main.main([]) == 2
    err = capsys.readouterr().err
    assert err == "dispatcher: configuration error: RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?\n"


def test_prod_needs_client_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_command.main(["check"], {"VOICEFLEET_PROFILE": "prod"}) == 1
    assert capsys.readouterr().out == (
        "VOICEFLEET_PROFILE=prod needs DISPATCHER_API_KEYS: set the callers' keys (from a secret store)\n")
    assert config_command.main(["check"], {"VOICEFLEET_PROFILE": "prod", "DISPATCHER_API_KEYS": "k" * 24}) == 0


def test_dev_warns_and_goes_on(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RESERVE_MAX_IDEL", "3")
    monkeypatch.setenv("LOG_LEVEL", "loud")  # stops the start just after the warning, before anything binds
    assert dispatcher_main.main([]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "dispatcher: warning: RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?"
    assert err[1].startswith("dispatcher: configuration error: LOG_LEVEL='loud'")


def test_check_is_0_for_a_good_configuration_and_1_with_a_line_per_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_command.main(["check"], {}) == 0
    assert capsys.readouterr().out == "configuration good (profile dev, size unset)\n"
    assert config_command.main(["check"], {"RESERVE_MAX_IDEL": "3", "PORT": "eighty", "MACHINES": "local"}) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?"
    assert any("PORT" in line for line in lines[1:]) and len(lines) == 2


def test_explain_and_diff_mask_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DISPATCHER_API_KEYS": "k-very-secret-1", "VOICEFLEET_SIZE": "medium", "PORT": "8080"}
    assert config_command.main(["explain", "dispatcher_api_keys"], env) == 0
    out = capsys.readouterr().out
    assert "k-very-secret-1" not in out and "value: (a secret, set) (from the environment)" in out
    assert config_command.main(["explain", "MAX_CONCURRENT_SESSIONS"], env) == 0
    explained = capsys.readouterr().out
    assert "value: 100 (from the size medium)" in explained
    assert "derived by VOICEFLEET_SIZE / VOICEFLEET_PROFILE: small 10, medium 100, large 500" in explained
    assert config_command.main(["diff"], env) == 0
    diff = capsys.readouterr().out.splitlines()
    assert "DISPATCHER_API_KEYS=(a secret, set)  (environment)" in diff
    assert "MAX_CONCURRENT_SESSIONS=100  (size medium)" in diff
    assert not any(line.startswith("PORT=") for line in diff)  # its default, set or not


def test_explain_names_the_nearest_of_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_command.main(["explain", "RESERVE_MAX_IDEL"], {}) == 2
    assert capsys.readouterr().err == "RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?\n"
    assert config_command.main(["nonsense"], {}) == 2


def test_an_old_name_is_read_as_the_new_one_which_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting has an old name today; one given here is read as its setting, and reported."""
    renamed = replace(by_name()["RESERVE_MAX_IDLE"], aliases=("RESERVE_IDLE_MAX",))
    monkeypatch.setattr(sources, "by_name", lambda: {**by_name(), "RESERVE_IDLE_MAX": renamed})
    resolved = resolve({"RESERVE_IDLE_MAX": "4"})
    assert resolved.env["RESERVE_MAX_IDLE"] == "4"
    assert resolved.source("RESERVE_MAX_IDLE") == "environment, as RESERVE_IDLE_MAX"
    assert resolve({"RESERVE_IDLE_MAX": "4", "RESERVE_MAX_IDLE": "6"}).env["RESERVE_MAX_IDLE"] == "6"
    monkeypatch.setattr(typos, "by_name", lambda: {**by_name(), "RESERVE_IDLE_MAX": renamed})
    assert typos.deprecated({"RESERVE_IDLE_MAX": "4"}) == [
        "RESERVE_IDLE_MAX is an old name of RESERVE_MAX_IDLE: rename it"]


def test_a_file_larger_than_the_limit_is_not_read_whole() -> None:
    """VOICEFLEET_CONFIG=/dev/zero (or a huge file): refused after the limit is read, in a process whose
    memory is capped well below what reading it all would take."""
    import subprocess
    import sys

    program = ("import resource, sys\n"
               "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
               "from dispatcher.settings.sources import SourceError, resolve\n"
               "try:\n"
               "    resolve({'VOICEFLEET_CONFIG': '/dev/zero'})\n"
               "except SourceError as exc:\n"
               "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout == f"VOICEFLEET_CONFIG=/dev/zero: larger than {sources.MAX_FILE_BYTES} bytes\n", done.stderr


def test_the_platforms_identity_header_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """Container Apps' and App Service's IDENTITY_HEADER is what their identity endpoint asks for a token
    with: never printed, and never in a file."""
    env = {"IDENTITY_ENDPOINT": "http://localhost:42356/msi/token", "IDENTITY_HEADER": "hdr-very-secret-2"}
    assert config_command.main(["diff"], env) == 0
    assert config_command.main(["explain", "IDENTITY_HEADER"], env) == 0
    out = capsys.readouterr().out
    assert "hdr-very-secret-2" not in out and "IDENTITY_HEADER=(a secret, set)  (environment)" in out


def test_yaml_words_stay_the_words_written(tmp_path: Path) -> None:
    """PyYAML reads YAML 1.1, where `on` and `off` are booleans: `RECORDING: on` must reach the parser as
    `on`, not `1` (which RECORDING refuses, and `METRIC_LINES: off` would be `0`)."""
    pytest.importorskip("yaml")
    config = tmp_path / "voicefleet.yaml"
    config.write_text("RECORDING: on\nMETRIC_LINES: off\nDASHBOARD_ENABLED: true\nCORS_ALLOW_ORIGINS: [yes, no]\n")
    env = resolve({"VOICEFLEET_CONFIG": str(config)}).env
    assert (env["RECORDING"], env["METRIC_LINES"], env["DASHBOARD_ENABLED"]) == ("on", "off", "1")
    assert env["CORS_ALLOW_ORIGINS"] == "yes,no"


def test_check_reads_the_recording_settings_a_start_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_command.main(["check"], {"RECORDING": "maybe"}) == 1
    assert "RECORDING='maybe' is not one of off, consent, on" in capsys.readouterr().out


def test_a_urls_password_and_query_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """Not secrets by name, but an endpoint with basic auth or a hook URL with its token in the query
    carries one: config diff and explain print neither."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel:pw-very-secret-3@collector.example:4318",
           "WEBHOOK_URL": "https://hooks.example/in?token=tok-very-secret-4",
           "TURN_URLS": "turn:turn.example:3478,turns:turn.example:5349"}
    assert config_command.main(["diff"], env) == 0
    assert config_command.main(["explain", "WEBHOOK_URL"], env) == 0
    out = capsys.readouterr().out
    assert "very-secret" not in out
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://otel:***@collector.example:4318  (environment)" in out
    assert "WEBHOOK_URL=https://hooks.example/in?***  (environment)" in out
    assert "TURN_URLS=turn:turn.example:3478,turns:turn.example:5349  (environment)" in out


def test_check_and_start_refuse_the_same_app_settings_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """What the app's wiring reads (the dashboard's switch, the reserve's bounds) is refused by the check
    and by a start's own check before it builds anything, in the same words: one code path."""
    env = {"DASHBOARD_ENABLED": "maybe", "RESERVE_MIN_IDLE": "5", "RESERVE_MAX_IDLE": "2"}
    assert config_command.main(["check"], env) == 1
    out = capsys.readouterr().out
    dashboard, reserve = "DASHBOARD_ENABLED='maybe'", "RESERVE_MAX_IDLE=2 is below the minimum idle count 5"
    assert dashboard in out and reserve in out, out
    started = subprocess.run([sys.executable, "-m", "dispatcher"], env={**os.environ, **env, "PORT": "0"},
                             cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
                             check=False)
    assert started.returncode == 2, started.stderr
    assert dashboard in started.stderr and reserve in started.stderr, started.stderr
