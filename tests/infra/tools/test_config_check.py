"""`voicefleet config check | explain | diff --stack NAME` (stacks/tools/config_check.py) on the example
stacks, and the plan's own check of the dispatcher's environment (stacks/tools/dispatcher_env.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.tools import paths
from stacks.tools.config_check import main
from stacks.tools.dispatcher_env import dispatcher_envs, refusals, stand_in
from stacks.tools.mocks import Registration

STACKS = ["aws-prod", "gcp-prod", "azure-prod", "k8s-dev", "k8s-sandbox-dev", "aws-dev", "gcp-dev", "azure-dev"]


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-check-cache")


@pytest.fixture(autouse=True)
def _own_cache(_module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's tests share one cache of kept answers (stacks/tools/config_cache.py), as a user's
    checks do, and leave the user's cache alone: the same stack and --config checked again reads the
    answer its first check kept (0.3 s of CPU where a run of the program takes 3 s). That a kept answer
    is the program's, and when it is not kept or not believed, is tests/infra/tools/test_config_cache.py's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(_module_cache))


PENDING = " is not set in stacks/Pulumi."  # a value the first `up` needs, which the check names apart


COLD = "note: no bot control channel, so no warm reserve: every start is cold"


def faults(out: str) -> list[str]:
    """What the check refused, the values a first `up` still needs and its notes left out."""
    return [line for line in out.splitlines() if PENDING not in line and ": note: " not in line
            and ": warning: " not in line]


@pytest.mark.parametrize(("stack", "said"), [
    ("aws-dev", "~40 s on Fargate: serve HTTPS (certificateArn, dispatcherDomain) and pulumi config set "
                "botChannel true"),
    ("azure-dev", "~45 s on Container Instances: pulumi config set botChannel true (the stack makes its token)"),
    ("aws-prod", None), ("gcp-prod", None), ("azure-prod", None), ("gcp-dev", None),
])  # fmt: skip
def test_a_stack_without_the_channel_is_told_every_start_is_cold(stack: str, said: str | None,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The prod stacks set no channel token and still get the channel (their profile turns it on, the
    stack makes its token); a stack without it hears what that costs and how to change it."""
    main(["check", "--stack", stack])
    out = capsys.readouterr().out
    if said is None:
        assert "every start is cold" not in out, out
    else:
        assert f"{stack}: {COLD}, {said}; docs/reserve.md" in out, out


def test_the_plan_of_a_stack_without_the_channel_says_every_start_is_cold() -> None:
    from stacks.tools.plan import checked_plan

    _, problems, notes = checked_plan("aws-dev")
    assert problems == [] and any(note.startswith(COLD.removeprefix("note: ")) for note in notes), notes


@pytest.mark.parametrize("stack", STACKS)
def test_every_example_stack_gives_its_dispatcher_a_good_environment_but_for_its_secrets(
        stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An example stack holds no secret: "configuration good" waits for them, each named with its command."""
    assert main(["check", "--stack", stack]) == 1
    out = capsys.readouterr().out
    assert faults(out) == [] and "configuration good" not in out, out
    for key in ("dailyApiKey", "dispatcherApiKeys", "dispatcherAdminKeys"):
        assert f"{stack}: {key}{PENDING}{stack}.yaml: checked with a placeholder; the first `pulumi up` needs it: " \
               f"`pulumi config set --secret {key} -s {stack}`" in out, out


def test_a_config_item_without_its_key_is_refused_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`--config s3cr3t` is most likely a value typed where KEY= belonged: the error numbers it, never shows it."""
    with pytest.raises(SystemExit) as done:
        main(["check", "--stack", "aws-dev", "--config", "region=us-east-1", "--config", "s3cr3t-value"])
    assert done.value.code == 2
    said = capsys.readouterr()
    assert "item 2 has no '='" in said.err and "s3cr3t" not in said.err + said.out, said


@pytest.mark.parametrize(("override", "named"), [
    ("maxConcurrentSessions=0", "voicefleet:maxConcurrentSessions"),  # a wrong value
    ("aws:region=", "aws:region"),  # a missing provider setting
    ("maxConcurentSessions=5", "maxConcurentSessions is no stack key: did you mean maxConcurrentSessions?"),
])
def test_a_stack_the_program_refuses_is_one_line_naming_it(override: str, named: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "aws-dev", "--config", override]) == 1
    lines = faults(capsys.readouterr().out)
    assert len(lines) == 1 and named in lines[0], lines


def test_explain_names_the_stack_key_a_value_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "max_concurrent_sessions", "--stack", "aws-prod"]) == 0
    assert "value: 2500 (from the stack key maxConcurrentSessions (Pulumi.aws-prod.yaml))" in capsys.readouterr().out
    assert main(["explain", "ECS_TASK_VCPU", "--stack", "aws-prod"]) == 0  # botCpu: size large's
    assert "value: 1 (derived from size: large (stack key botCpu))" in capsys.readouterr().out
    assert main(["explain", "ECS_CLUSTER", "--stack", "aws-prod"]) == 0
    assert "the stack program (from its resources" in capsys.readouterr().out


def test_a_secret_is_set_and_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--stack", "k8s-dev"]) == 0
    out = capsys.readouterr().out
    assert "DISPATCHER_API_KEYS=(a secret, set)" in out
    assert "REDIS_URL=(a secret, set)  (stack key k8sStoreUrl" in out
    assert "masked" not in out and "stand-in" not in out


def test_an_unknown_stack_or_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["check", "--stack", "aws-nowhere"])
    assert stopped.value.code == 2
    with pytest.raises(SystemExit) as stopped:
        main(["explain", "MAX_CONCURENT_SESSIONS", "--stack", "aws-dev"])
    assert stopped.value.code == 2
    assert "did you mean MAX_CONCURRENT_SESSIONS?" in capsys.readouterr().err


def _task_definition(environment: dict[str, str], secrets: list[str]) -> Registration:
    """An ECS task definition as the mocks record it: container definitions are one JSON document."""
    import json

    container = {"name": "dispatcher", "environment": [{"name": k, "value": v} for k, v in environment.items()],
                 "secrets": [{"name": name, "valueFrom": f"arn:secret:{name}"} for name in secrets]}
    return Registration(urn="urn:td", type="aws:ecs/taskDefinition:TaskDefinition", name="td",
                        inputs={"containerDefinitions": json.dumps([container])}, custom=True, provider="",
                        parent="", protect=False)


ECS = {"MACHINES": "ecs", "HOST": "0.0.0.0", "AWS_REGION": "us-east-1", "ECS_CLUSTER": "c",
       "ECS_TASK_DEFINITION": "bot", "ECS_SUBNETS": "subnet-1", "ECS_SECURITY_GROUPS": "sg-1"}


def test_the_plan_refuses_what_the_dispatcher_would_refuse_in_one_line() -> None:
    keys = ["DAILY_API_KEY", "DISPATCHER_API_KEYS"]
    assert refusals([_task_definition(ECS, keys)]) == []
    found = refusals([_task_definition({**ECS, "MAX_CONCURRENT_SESSIONS": "0"}, keys)])
    assert len(found) == 1 and "MAX_CONCURRENT_SESSIONS=0 must be at least 1" in found[0], found


def test_a_secret_by_reference_counts_as_set_and_a_missing_one_does_not() -> None:
    (env,) = dispatcher_envs([_task_definition(ECS, ["DAILY_API_KEY", "DISPATCHER_API_KEYS"])])
    assert env.masked == {"DAILY_API_KEY", "DISPATCHER_API_KEYS"}
    assert env.with_stand_ins()["DISPATCHER_API_KEYS"] == stand_in("DISPATCHER_API_KEYS")
    assert any("DISPATCHER_API_KEYS" in line for line in refusals([_task_definition(ECS, ["DAILY_API_KEY"])]))


def test_the_plan_stops_on_a_refusal_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The plan's wiring: what the dispatcher's check refuses (above, on a real environment) is a violation."""
    from stacks.tools import dispatcher_env, plan

    seen: list[int] = []

    def refusing(registrations: list[Registration]) -> list[str]:
        seen.append(len(dispatcher_envs(registrations)))
        return ["voicefleet-k8s-dev-dispatcher: the dispatcher would refuse its environment: MAX_CONCURRENT_SESSIONS=0 "
                "must be at least 1"]

    monkeypatch.setattr(dispatcher_env, "refusals", refusing)
    assert plan.main(["k8s-dev"]) == 1
    assert seen == [1]  # the one dispatcher container of the stack, read from the plan's own run
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("#")]
    assert lines == ["k8s-dev: voicefleet-k8s-dev-dispatcher: the dispatcher would refuse its environment: "
                     "MAX_CONCURRENT_SESSIONS=0 must be at least 1"]


@pytest.mark.parametrize(("text", "named"), [
    ("config:\n  aws:region: [us-east-1\n", "Pulumi.broken.yaml is not YAML at line 3"),  # an unclosed list
    ("config:\n  - voicefleet:cloud\n", "Pulumi.broken.yaml must be a mapping with a `config:` mapping"),
    ("just words\n", "Pulumi.broken.yaml must be a mapping with a `config:` mapping"),
])
def test_a_stack_file_that_is_no_stack_file_is_one_line(text: str, named: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A hand-edited stack file with a YAML slip: one line naming the file, exit 1, never a traceback."""
    (tmp_path / "Pulumi.broken.yaml").write_text(text)
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    assert main(["check", "--stack", "broken"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"broken: {named}"), lines


def test_a_value_the_program_derives_from_another_key_names_that_key(capsys: pytest.CaptureFixture[str]) -> None:
    """gcp-dev leaves gcpZone at "", so its zone is gcp:region's `-a`: not gcpZone's default."""
    assert main(["explain", "GCE_ZONE", "--stack", "gcp-dev"]) == 0
    assert "value: us-central1-a (derived from stack key gcp:region (Pulumi.gcp-dev.yaml))" \
        in capsys.readouterr().out
    assert main(["explain", "GCE_ZONE", "--stack", "gcp-prod"]) == 0  # set: the key itself
    assert "value: europe-west1-b (from the stack key gcpZone (Pulumi.gcp-prod.yaml))" in capsys.readouterr().out


def test_a_value_config_gave_is_not_the_stack_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "MAX_CONCURRENT_SESSIONS", "--stack", "aws-prod",
                 "--config", "maxConcurrentSessions=300"]) == 0
    assert "value: 300 (from the stack key maxConcurrentSessions (--config))" in capsys.readouterr().out


@pytest.mark.parametrize(("stack", "key"), [
    ("k8s-dev", "dailyApiKey"), ("k8s-dev", "k8sStoreUrl"),  # secrets of the stack file: refused unread
    ("aws-dev", "webhookSecret"),  # the dispatcher takes it by reference (stacks/config/dispatcher_keys.py)
    ("aws-dev", "otelExporterOtlpHeaders"),  # a secret the table does not list: the program's own refusal
    ("aws-dev", "aws:secretKey"), ("gcp-dev", "gcp:credentials"),  # a provider's credential, which it never reads
    ("azure-dev", "azure-native:clientSecret"),
])
def test_a_secret_given_by_config_is_refused_and_never_shown(stack: str, key: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--config values are plain: a secret's key is refused in one line naming the way, without its value."""
    assert main(["diff", "--stack", stack, "--config", f"{key}=rediss://:leaked-0123456789abcdef@h:6379"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and f"pulumi config set --secret {key}" in lines[0] and "leaked" not in lines[0], lines


@pytest.mark.parametrize(("override", "named"), [
    ("aws:regoin=us-east-1", "aws:regoin is no aws provider key: did you mean aws:region?"),
    ("awz:region=us-east-1", "awz:region is no stack key: did you mean aws:region?"),
    ("gcp:projcet=p", "gcp:projcet is no gcp provider key: did you mean gcp:project?"),
])
def test_a_key_of_another_namespace_no_one_reads_is_refused_naming_the_nearest(
        override: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A provider's keys are the ones its SDK reads: a slip in one would be ignored by the provider."""
    assert main(["check", "--stack", "aws-dev", "--config", override]) == 1
    lines = faults(capsys.readouterr().out)
    assert len(lines) == 1 and named in lines[0], lines


def test_a_provider_key_its_sdk_reads_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "aws-dev", "--config", "aws:skipMetadataApiCheck=true"]) == 1  # no secret set
    assert faults(capsys.readouterr().out) == []


def test_a_refusal_never_shows_a_stand_in_as_the_users_value() -> None:
    """A masked variable stands in as set with a value of the tool's: a refusal quoting it says it is masked."""
    keys = ["DAILY_API_KEY", "DISPATCHER_API_KEYS", "MAX_CONCURRENT_SESSIONS"]  # one the check refuses as text
    (line,) = refusals([_task_definition(ECS, keys)])
    assert "MAX_CONCURRENT_SESSIONS='(a Pulumi secret of the stack, set)'" in line, line
    assert stand_in("MAX_CONCURRENT_SESSIONS") not in line


def test_a_value_from_several_keys_names_each_key_it_is_computed_from() -> None:
    """The channel's caps are the sessions and the reserve spread over dispatcherCount's replicas, with
    the bot channel: source() names each of those keys by where its value is, not dispatcherCount alone."""
    from stacks.tools.config_check import _config, source

    for setting in ("BOT_CHANNEL_MAX_CONNECTIONS", "MAX_CONNECTIONS"):
        said = source(setting, "aws-prod", _config("aws-prod", {}))
        assert "derived from size: large (stack key dispatcherCount)" in said, said
        assert "stack key maxConcurrentSessions (" in said and "stack key reserveMaxIdle (" in said, said
        assert "stack key botChannel (derived from profile: prod)" in said, said
    given = source("BOT_CHANNEL_MAX_CONNECTIONS", "aws-prod", _config("aws-prod", {"maxConcurrentSessions": "40"}),
                   frozenset({"voicefleet:maxConcurrentSessions"}))
    assert "stack key maxConcurrentSessions (--config)" in given, given


def test_the_provider_credentials_refused_are_keys_their_sdks_read() -> None:
    from stacks.config.stack_keys import PROVIDER_CREDENTIALS, provider_keys

    assert sorted(key for key in PROVIDER_CREDENTIALS
                  if key.split(":", 1)[1] not in provider_keys().get(key.split(":", 1)[0], ())) == []


def test_every_fault_of_the_stack_file_is_reported_in_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Three wrong values and a misspelt key: one run names all four, as the environment check does."""
    assert main(["check", "--stack", "aws-dev", "--config", "botCpu=300", "--config", "maxConcurentSessions=3",
                 "--config", "keepAliveSeconds=1", "--config", "logRetentionDays=4"]) == 1
    lines = faults(capsys.readouterr().out)
    for named in ("voicefleet:botCpu must be a Fargate CPU size", "voicefleet:maxConcurentSessions is no stack key",
                  "voicefleet:keepAliveSeconds must be longer than", "voicefleet:logRetentionDays must be one of"):
        assert sum(named in line for line in lines) == 1, (named, lines)
    assert len(lines) == 4, lines


def test_a_provider_key_left_out_is_named_as_the_cli_sets_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`aws:regoin` for `aws:region`: the advice sets aws:region (`pulumi config set region` would set
    voicefleet:region, another key)."""
    assert main(["check", "--stack", "aws-dev", "--config", "aws:region=", "--config", "aws:regoin=us-east-1"]) == 1
    out = capsys.readouterr().out
    assert "aws:region is required (pulumi config set aws:region …)" in out, out
    assert "aws:regoin is no aws provider key: did you mean aws:region?" in out
    assert "pulumi config set region" not in out


def test_keys_of_another_cloud_are_refused_naming_the_cloud_they_belong_to(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Copied from another stack file, they would pass in silence: nothing in an AWS stack reads them."""
    assert main(["check", "--stack", "aws-dev", "--config", "gcp:project=p", "--config", "gcpZone=us-central1-a",
                 "--config", "k8sBotCpu=1", "--config", "azure-native:location=westeurope",
                 "--config", "botMachineType=e2-small"]) == 1
    lines = faults(capsys.readouterr().out)
    for key, cloud in (("gcp:project", "gcp"), ("voicefleet:gcpZone", "gcp"), ("voicefleet:k8sBotCpu", "k8s"),
                       ("azure-native:location", "azure"), ("voicefleet:botMachineType", "gcp")):
        assert sum(f"{key} is a key of {cloud} stacks, and this stack's cloud is aws" in line for line in lines) == 1, \
            (key, lines)
    assert len(lines) == 5, lines


def test_explain_takes_a_stack_key_and_names_the_settings_it_writes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "maxConcurrentSessions", "--stack", "aws-prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("maxConcurrentSessions (stack key voicefleet:maxConcurrentSessions): Sessions the dispatcher")
    assert "  type: integer; default: 10\n  value: 2500 (Pulumi.aws-prod.yaml)\n" in out
    assert "sets the dispatcher's MAX_CONCURRENT_SESSIONS (voicefleet config explain MAX_CONCURRENT_SESSIONS" in out
    assert main(["explain", "voicefleet:dailyApiKey", "--stack", "aws-prod"]) == 0
    out = capsys.readouterr().out
    assert "a secret" in out and "pulumi config set --secret dailyApiKey -s aws-prod" in out


def test_a_stack_key_set_in_the_environment_is_named_with_its_command(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("maxConcurrentSessions", "3")
    assert main(["check", "--stack", "aws-dev"]) == 1
    assert faults(capsys.readouterr().out) == [
        "aws-dev: maxConcurrentSessions is set in the environment, where no stack tool reads a stack key: "
        "`pulumi config set maxConcurrentSessions <value> -s aws-dev` (or try it first: "
        "`--config maxConcurrentSessions=<value>`)"]


def test_diff_says_it_compares_with_the_defaults_and_where_the_deployed_stack_is(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--stack", "aws-dev"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("# aws-dev: the settings that differ from the dispatcher's defaults")
    assert "not what is deployed" in first and "pulumi preview --diff -s aws-dev" in first
    assert "python -m stacks.plan aws-dev --diff <the commit you deployed from>" in first
