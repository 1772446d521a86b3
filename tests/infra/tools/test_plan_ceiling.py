"""The shipped stacks' concurrency ceiling (stacks/config/ceiling_notes.py), as the plan and `voicefleet
config check --stack` say it: a note on every stack that runs bots, and a warning, never a refusal, where
maxConcurrentSessions (with the reserve's bots) goes past a quota."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import grpc
import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks

from stacks.config import ceiling
from stacks.config.reader import SettingsError
from stacks.tools import mocks
from stacks.tools.config_check import main as config_check
from stacks.tools.plan import _diagnostics, checked_plan, stack_config
from tests.infra.settings_read import read_settings
from tests.infra.tools.test_config_check import faults

NOTE = "concurrency ceiling ("
VCPU_QUOTA = "Fargate On-Demand vCPU resource count (L-3032A538) of 6 vCPUs (documented default, not your account's)"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@cache
def _plan(stack: str) -> tuple[str, list[str], list[str]]:
    """A shipped stack file's plan, unchanged (no answer patched): read by two tests, made once."""
    return checked_plan(stack)


def _config(stack: str, overrides: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """The stack file's configuration with `overrides` set as `pulumi config set` writes them: plain."""
    config, secret_keys = stack_config(stack)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"voicefleet:{key}"
        config[full] = value
        secret_keys = [name for name in secret_keys if name != full]
    return config, secret_keys


def _said(stack: str, overrides: Mapping[str, str] | None = None) -> list[str]:
    """What the program's first step, reading the stack's settings (tests/infra/settings_read.py), says with
    `overrides`: the ceiling's note and warnings are said there (stacks/config/settings.py, ceiling_notes), the
    same the plan shows of its run (checked_plan, kept below where a claim is the plan's: no violation)."""
    config, secret_keys = _config(stack, overrides)
    with _diagnostics() as said:
        read_settings(config, secret_keys, stack=stack)
    return list(dict.fromkeys(said))


def _run_said(stack: str, overrides: Mapping[str, str] | None = None) -> list[str]:
    """What one run of the whole program says: with accountQuotas the quota is read, and its note said, once the
    stack's explicit provider exists (stacks/config/model.py quota_read), past the settings' read."""
    config, secret_keys = _config(stack, overrides)
    with _diagnostics() as said:
        mocks.run_program(config, secret_keys, stack=stack)
    return list(dict.fromkeys(said))


def _ceiling(notes: list[str]) -> tuple[list[str], list[str]]:
    """The plan's ceiling note and its warnings (each names maxConcurrentSessions first)."""
    return ([n for n in notes if n.startswith(NOTE)],
            [n for n in notes if n.startswith("maxConcurrentSessions=") and "sessions at once (" in n])


def test_aws_prod_plans_with_a_warning_that_its_bots_pass_fargates_documented_vcpu_quota() -> None:
    _, problems, notes = _plan("aws-prod")
    assert problems == []  # said, not refused
    (note,), (warning,) = _ceiling(notes)
    assert note.startswith(f"{NOTE}Fargate, us-east-1): 0 sessions at once, set by the Fargate On-Demand vCPU")
    assert "20 launches a second (the provider's rate) × 4-minute calls (expectedCallMinutes) = 4,800 sessions" in note
    assert warning.startswith(f"maxConcurrentSessions=2,500 + reserveMaxIdle=400 = 2,900 bots is above the "
                              f"{VCPU_QUOTA}")
    assert "--quota-code L-3032A538 --desired-value 2903 --region us-east-1" in warning  # + 3 dispatcher vCPUs
    assert "3 vCPUs for the dispatcher (3 × 512 CPU units × 200 % during a deploy)" in note


def test_aws_dev_notes_its_ceiling_and_warns_only_past_it() -> None:
    _, problems, notes = _plan("aws-dev")
    (note,), warnings = _ceiling(notes)
    assert problems == [] and warnings == []
    # (6 vCPUs - the dispatcher's 0.25 × 2 during a deploy) ÷ 0.5, no reserve
    assert note.startswith(f"{NOTE}Fargate, us-east-1): 11 sessions at once")
    notes = _said("aws-dev", {"maxConcurrentSessions": "12"})
    (_,), (warning,) = _ceiling(notes)
    assert warning.startswith(f"maxConcurrentSessions=12 is above the {VCPU_QUOTA}")


def test_a_longer_expected_call_raises_gces_launch_ceiling_past_gcp_prods_sessions() -> None:
    notes = _said("gcp-prod")
    (note,), (warning,) = _ceiling(notes)
    assert "2,400 sessions at once" in note and "CPUS quota in europe-west1 has no documented default" in note
    assert warning.startswith("maxConcurrentSessions=2,500 is above the Compute Engine API mutation requests")
    assert "GCE_INSERT_RATE" in warning
    notes = _said("gcp-prod", {"expectedCallMinutes": "5"})
    (note,), warnings = _ceiling(notes)
    assert "3,000 sessions at once" in note and warnings == []


def test_config_check_says_the_note_and_the_warnings_and_refuses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    config_check(["check", "--stack", "azure-prod"])  # 1: the secrets its first `up` needs, named apart
    out = capsys.readouterr().out
    assert faults(out) == []  # every line is a first-up value, a note or a warning: no refusal
    assert f"azure-prod: note: {NOTE}Azure Container Instances, northeurope): 6 sessions at once" in out
    warnings = [line for line in out.splitlines() if line.startswith("azure-prod: warning: ")]
    assert len(warnings) == 3  # the creates, the container groups and the cores
    assert any("Container Instances container groups per region (ContainerGroups) of 100 groups (documented "
               "default, not your account's)" in line and "the stack needs 240 groups" in line for line in warnings)
    config_check(["check", "--stack", "aws-dev", "--config", "maxConcurrentSessions=11"])
    out = capsys.readouterr().out
    assert f"aws-dev: note: {NOTE}Fargate, us-east-1): 11 sessions at once" in out and ": warning: " not in out
    config_check(["check", "--stack", "aws-prod"])  # the stack file's dispatchers, as the plan counts them
    assert "--desired-value 2903 --region us-east-1" in capsys.readouterr().out


def test_a_bad_expected_call_length_is_refused_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check(["check", "--stack", "aws-dev", "--config", "expectedCallMinutes=0"]) == 1
    assert "voicefleet:expectedCallMinutes" in capsys.readouterr().out


QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota"


def test_account_quotas_reads_the_accounts_fargate_vcpu_quota_and_counts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS Service Quotas stands in for the account (an outside service): it answers what it holds."""
    asked: list[dict[str, object]] = []
    answer = mocks.RecordingMocks.call

    def service_quotas(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != QUOTA_TOKEN:
            return answer(self, args)
        asked.append(dict(args.args))
        return {"serviceCode": "fargate", "quotaCode": "L-3032A538", "value": 3000.0}

    monkeypatch.setattr(mocks.RecordingMocks, "call", service_quotas)
    notes = _run_said("aws-prod", {"accountQuotas": "true"})
    (note,), warnings = _ceiling(notes)
    assert warnings == []  # 2,900 bots and 3 dispatcher vCPUs fit in 3,000 vCPUs
    assert {"serviceCode": "fargate", "quotaCode": "L-3032A538", "region": "us-east-1"}.items() <= asked[-1].items()
    assert ("Fargate On-Demand vCPU resource count (L-3032A538) of 3,000 vCPUs (your account's, read from Service "
            "Quotas by this preview)") in note and "100 sessions beside reserveMaxIdle=400" not in note
    assert note.startswith(f"{NOTE}Fargate, us-east-1): 2,597 sessions at once")  # 3,000 - 3 - 400 reserve bots


def test_bots_on_fargate_spot_are_held_to_the_spot_vcpu_quota_and_a_preview_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spot = {"ecsCapacityProviders": "FARGATE_SPOT", "maxConcurrentSessions": "13"}
    notes = _said("aws-dev", spot)
    (note,), (warning,) = _ceiling(notes)
    assert note.startswith(f"{NOTE}Fargate, us-east-1): 12 sessions at once, set by the Fargate Spot vCPU")
    assert f"Fargate Spot vCPU resource count (L-36FBB829) of 6 vCPUs ({ceiling.ACCOUNT_DEFAULT})" in warning
    assert "--quota-code L-36FBB829 --desired-value 7 --region us-east-1" in warning
    asked: list[str] = []
    answer = mocks.RecordingMocks.call

    def service_quotas(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != QUOTA_TOKEN:
            return answer(self, args)
        asked.append(str(args.args["quotaCode"]))
        return {"value": {"L-3032A538": 100.0, "L-36FBB829": 20.0}[str(args.args["quotaCode"])]}

    monkeypatch.setattr(mocks.RecordingMocks, "call", service_quotas)
    notes = _run_said("aws-dev", {"ecsCapacityProviders": "FARGATE_SPOT:1,FARGATE:1", "accountQuotas": "true"})
    (note,), _ = _ceiling(notes)
    assert set(asked) == {"L-3032A538", "L-36FBB829"}
    assert "Fargate Spot vCPU resource count (L-36FBB829) of 20 vCPUs (your account's" in note
    assert note.startswith(f"{NOTE}Fargate, us-east-1): 80 sessions at once")  # 20 ÷ (0.5 × half the bots)


def test_account_quotas_offline_falls_back_to_the_documented_default() -> None:
    notes = _run_said("aws-dev", {"accountQuotas": "true"})  # the plan's mocks answer no quota
    (note,), _ = _ceiling(notes)
    assert "of 6 vCPUs (documented default, not your account's)" in note


def test_the_stack_files_no_quota_request_and_refuses_the_key_that_did_naming_the_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Service Quotas' increase request is a one-off with AWS, not state: the provider's resource fails `up`
    once the account holds more than it or a request is open, so the stack never makes one."""
    for stack in ("aws-dev", "aws-prod"):
        text, _, _ = _plan(stack)
        assert "aws:servicequotas/" not in text
    assert config_check(["check", "--stack", "aws-dev", "--config", "fargateVcpuQuotaRequest=2900"]) == 1
    (refusal,) = [line for line in capsys.readouterr().out.splitlines() if "fargateVcpuQuotaRequest" in line]
    assert "`pulumi config rm fargateVcpuQuotaRequest`" in refusal
    assert "aws service-quotas request-service-quota-increase" in refusal


class EngineRefusal(grpc.RpcError):
    """How the engine answers an invoke its provider refused: a gRPC error (status UNKNOWN) whose details carry
    the provider's message, which the program receives as an error of that invoke, not as a crash."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


def _refusing(monkeypatch: pytest.MonkeyPatch, token: str, message: str) -> None:
    answer = mocks.RecordingMocks.call

    def refused(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != token:
            return answer(self, args)
        raise EngineRefusal(f"invocation of {token} returned an error: {message}")

    monkeypatch.setattr(mocks.RecordingMocks, "call", refused)


# A real denial as the AWS SDK words it, inside the Terraform bridge's layers (about 450 characters).
AWS_DENIAL = ("getting Default Service Quota for (fargate/L-3032A538): operation error Service Quotas: "
              "GetAWSDefaultServiceQuota, https response error StatusCode: 400, RequestID: "
              "5b1c2f0e-8f5d-4a8e-9c1e-0d2a7f3b9e11, api error AccessDeniedException: User: "
              "arn:aws:sts::123456789012:assumed-role/deployer/ci is not authorized to perform: "
              "servicequotas:GetAWSDefaultServiceQuota because no identity-based policy allows the "
              "servicequotas:GetAWSDefaultServiceQuota action")


def test_a_denied_quota_read_falls_back_to_the_default_and_names_both_permissions_it_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's data source calls GetAWSDefaultServiceQuota, then GetServiceQuota: a deployer without
    either still previews and ups, with the documented default and a warning that says what the read needs."""
    # The bridge's own layers around the AWS error: its `invoking <token>: ` and its multierror's list.
    _refusing(monkeypatch, QUOTA_TOKEN, f"invoking {QUOTA_TOKEN}: 1 error occurred:\n\t* {AWS_DENIAL}\n\n")
    _, problems, notes = checked_plan("aws-dev", {"accountQuotas": "true", "maxConcurrentSessions": "12"})
    (note,), (past,) = _ceiling(notes)
    assert problems == []
    assert f"{VCPU_QUOTA}: " in note and past.startswith(f"maxConcurrentSessions=12 is above the {VCPU_QUOTA}")
    (refused,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert refused.startswith(  # the AWS error itself, whole, and none of the layers around it
        "accountQuotas: the read of the Fargate vCPU quota L-3032A538 from Service Quotas in us-east-1 was refused "
        f"({AWS_DENIAL}): ")
    assert "counts the documented default instead" in refused and "`pulumi config set accountQuotas false`" in refused
    root = Path(__file__).resolve().parents[3]
    described = yaml.safe_load((root / "Pulumi.yaml").read_text())["config"]["accountQuotas"]["description"]
    table = (root / "docs/pulumi.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| `accountQuotas`"))
    for said_it in (described, row, refused):
        assert "servicequotas:GetAWSDefaultServiceQuota" in said_it and "servicequotas:GetServiceQuota" in said_it
    for said_it in (described, row):
        assert "cloudquotas.googleapis.com" in said_it and "cloudquotas.quotas.get" in said_it  # GCP's read
        assert "documented default" in said_it and "never fails the preview" in said_it


def test_a_denied_spot_quota_read_counts_its_default_and_keeps_the_on_demand_value_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer = mocks.RecordingMocks.call

    def spot_denied(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != QUOTA_TOKEN:
            return answer(self, args)
        if args.args["quotaCode"] == "L-36FBB829":
            raise EngineRefusal("AccessDeniedException: explicit deny on L-36FBB829")
        return {"value": 100.0}

    monkeypatch.setattr(mocks.RecordingMocks, "call", spot_denied)
    notes = _run_said("aws-dev", {"ecsCapacityProviders": "FARGATE_SPOT:1,FARGATE:1",
                                                  "accountQuotas": "true"})
    (note,), _ = _ceiling(notes)
    # Spot's quota falls back to its default; the On-Demand value read still counts
    assert f"Fargate Spot vCPU resource count (L-36FBB829) of 6 vCPUs ({ceiling.ACCOUNT_DEFAULT})" in note
    assert f"Fargate On-Demand vCPU resource count (L-3032A538) of 100 vCPUs ({ceiling.READ})" in note
    (refused,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert "L-36FBB829" in refused and "L-3032A538" not in refused


CLOUD_QUOTAS_TOKEN = "gcp:cloudquota/getSQuotaInfo:getSQuotaInfo"


def _cloud_quotas(monkeypatch: pytest.MonkeyPatch, infos: list[dict[str, object]]) -> list[dict[str, object]]:
    """Cloud Quotas stands in for the project (an outside service): it answers a QuotaInfo's
    dimensionsInfos, most specific first, as the API and pulumi_gcp's data source give them."""
    asked: list[dict[str, object]] = []
    answer = mocks.RecordingMocks.call

    def cloud_quotas(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != CLOUD_QUOTAS_TOKEN:
            return answer(self, args)
        asked.append(dict(args.args))
        return {"quotaId": args.args["quotaId"], "metric": "compute.googleapis.com/cpus", "dimensionsInfos": infos}

    monkeypatch.setattr(mocks.RecordingMocks, "call", cloud_quotas)
    return asked


def test_account_quotas_reads_the_projects_cpus_quota_in_the_region_and_warns_past_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _cloud_quotas(monkeypatch, [
        {"dimensions": {"region": "europe-west1"}, "details": [{"value": "3000"}],
         "applicableLocations": ["europe-west1"]},
        {"dimensions": {}, "details": [{"value": "24"}], "applicableLocations": ["us-central1", "europe-west4"]},
    ])
    _, problems, notes = checked_plan("gcp-prod", {"accountQuotas": "true", "expectedCallMinutes": "5"})
    (note,), (warning,) = _ceiling(notes)
    assert problems == []  # said, not refused
    assert {"parent": "projects/voicefleet-prod", "service": "compute.googleapis.com",
            "quotaId": "CPUS-per-project-region"}.items() <= asked[-1].items()
    assert ("Compute Engine CPUS quota (CPUS) of 3,000 vCPUs (your project's, read from Cloud Quotas by this "
            "preview)") in note and "has no documented default" not in note
    # e2-standard-2 counts 2 vCPUs: 3,000 ÷ 2 = 1,500 bots, 400 of them the reserve's
    assert note.startswith(f"{NOTE}Compute Engine, project voicefleet-prod, europe-west1): 1,100 sessions at once, "
                           "set by the Compute Engine CPUS quota")
    assert warning.startswith("maxConcurrentSessions=2,500 + reserveMaxIdle=400 = 2,900 bots is above the Compute "
                              "Engine CPUS quota (CPUS) of 3,000 vCPUs")
    assert "the stack needs 5800 vCPUs" in warning  # 2,900 bots × 2 vCPUs
    assert "IAM & Admin > Quotas (Compute Engine API, CPUS-per-project-region, europe-west1)" in warning


def test_account_quotas_on_gcp_takes_the_projects_default_where_no_entry_names_the_region(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _cloud_quotas(monkeypatch, [
        {"dimensions": {"region": "us-east1"}, "details": [{"value": "9000"}], "applicableLocations": ["us-east1"]},
        {"dimensions": {}, "details": [{"value": "24"}], "applicableLocations": ["us-central1", "europe-west1"]},
    ])
    notes = _run_said("gcp-dev", {"accountQuotas": "true"})
    (note,), warnings = _ceiling(notes)
    assert "Compute Engine CPUS quota (CPUS) of 24 vCPUs (your project's" in note
    assert note.startswith(f"{NOTE}Compute Engine, project voicefleet-dev, us-central1): 10 sessions at once")  # 12 - 2
    assert warnings == []  # gcp-dev's 5 sessions fit in 12 e2-small VMs


def test_account_quotas_on_gcp_offline_says_what_the_stack_needs_of_the_cpus_quota() -> None:
    notes = _run_said("gcp-prod", {"accountQuotas": "true"})  # the plan's mocks answer no quota
    (note,), _ = _ceiling(notes)
    assert "CPUS quota in europe-west1 has no documented default" in note and "Cloud Quotas" not in note


def test_a_denied_cloud_quotas_read_says_what_the_stack_needs_and_does_not_fail_the_gcp_preview(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _refusing(monkeypatch, CLOUD_QUOTAS_TOKEN, "Error 403: Permission 'cloudquotas.quotas.get' denied on resource")
    notes = _run_said("gcp-dev", {"accountQuotas": "true"})
    (note,), _ = _ceiling(notes)
    assert "CPUS quota in us-central1 has no documented default" in note
    (refused,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert refused.startswith("accountQuotas: the read of Compute Engine's CPUS-per-project-region quota from Cloud "
                              "Quotas for project voicefleet-dev was refused (")
    assert "Permission 'cloudquotas.quotas.get' denied" in refused
    assert "gcloud services enable cloudquotas.googleapis.com" in refused


def test_a_cloud_quotas_answer_with_an_empty_value_is_said_unread_and_does_not_fail_the_preview(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The API leaves an int64 0 out of its JSON, and the provider's flatten keeps the detail with an empty value."""
    _cloud_quotas(monkeypatch, [{"dimensions": {"region": "us-central1"}, "details": [{"value": ""}],
                                 "applicableLocations": ["us-central1"]}])
    notes = _run_said("gcp-dev", {"accountQuotas": "true"})
    (note,), _ = _ceiling(notes)
    assert "CPUS quota in us-central1 has no documented default" in note
    (unread,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert unread.startswith("accountQuotas: the read of Compute Engine's CPUS-per-project-region quota from Cloud "
                             "Quotas for project voicefleet-dev answered no value it could read (ValueError: ")
    assert "cloudquotas.quotas.get" not in unread and "`pulumi config set accountQuotas false`" in unread


def test_a_service_quotas_answer_of_no_number_is_said_unread_and_the_default_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer = mocks.RecordingMocks.call

    def not_a_number(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        return {"value": "lots"} if args.token == QUOTA_TOKEN else answer(self, args)

    monkeypatch.setattr(mocks.RecordingMocks, "call", not_a_number)
    notes = _run_said("aws-dev", {"accountQuotas": "true"})
    (note,), _ = _ceiling(notes)
    assert f"{VCPU_QUOTA}: " in note
    (unread,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert "L-3032A538 from Service Quotas in us-east-1 answered no value it could read (ValueError: " in unread


def test_config_check_takes_account_quotas_on_gcp_and_refuses_it_on_azure(capsys: pytest.CaptureFixture[str]) -> None:
    config_check(["check", "--stack", "gcp-dev", "--config", "accountQuotas=true"])
    assert "accountQuotas" not in capsys.readouterr().out
    assert config_check(["check", "--stack", "azure-dev", "--config", "accountQuotas=true"]) == 1
    assert "accountQuotas" in capsys.readouterr().out


def test_k8s_plans_with_what_its_bots_need_of_the_nodes_and_counts_a_stated_allocatable_cpu(
        capsys: pytest.CaptureFixture[str]) -> None:
    notes = _said("k8s-dev")
    (note,), warnings = _ceiling(notes)
    assert warnings == []
    assert note.startswith(f"{NOTE}Kubernetes, namespace voicefleet-bots): not counted")
    assert "must hold 7 bots (5 sessions + 2 reserve) × 1 core a bot (k8sBotCpu) = 7 cores" in note
    notes = _said("k8s-dev", {"k8sAllocatableCpu": "4000m"})
    (note,), (warning,) = _ceiling(notes)
    assert "2 sessions at once" in note
    assert "`pulumi config set k8sAllocatableCpu 7`" in warning
    config_check(["check", "--stack", "k8s-dev", "--config", "k8sAllocatableCpu=4"])
    assert "k8s-dev: warning: maxConcurrentSessions=5 + reserveMaxIdle=2 = 7 bots is above" in capsys.readouterr().out
    assert config_check(["check", "--stack", "k8s-dev", "--config", "k8sAllocatableCpu=lots"]) == 1
    assert "voicefleet:k8sAllocatableCpu must be CPU as cores or millicores" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["9" * 401, "9" * 5000, "1000000", f"{'9' * 30}m"])
def test_a_k8s_allocatable_cpu_past_a_million_cores_is_refused_by_name_not_overflowed(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SettingsError, match="voicefleet:k8sAllocatableCpu must be CPU as cores or millicores.*under a "
                                            "million cores"):
        _said("k8s-dev", {"k8sAllocatableCpu": value})
    assert config_check(["check", "--stack", "k8s-dev", "--config", f"k8sAllocatableCpu={value}"]) == 1
    assert "voicefleet:k8sAllocatableCpu must be CPU as cores or millicores" in capsys.readouterr().out


def test_k8s_counts_the_runtime_class_pod_overhead_in_the_plan_and_config_check(
        capsys: pytest.CaptureFixture[str]) -> None:
    kata = {"k8sRuntimeClass": "kata-qemu", "k8sAllocatableCpu": "7"}
    notes = _said("k8s-dev", kata)
    (note,), _ = _ceiling(notes)
    assert "5 sessions at once" in note and "kata-qemu's Pod Overhead is not counted" in note
    notes = _said("k8s-dev", {**kata, "k8sPodOverheadCpu": "250m"})
    (note,), (warning,) = _ceiling(notes)
    assert "3 sessions at once" in note and "not counted" not in note  # 7 ÷ 1.25, less 2
    assert "`pulumi config set k8sAllocatableCpu 9`" in warning  # 7 bots × 1.25 cores
    config_check(["check", "--stack", "k8s-dev", "--config", "k8sRuntimeClass=kata-qemu", "--config",
                  "k8sAllocatableCpu=7", "--config", "k8sPodOverheadCpu=250m"])
    assert "k8s-dev: note: concurrency ceiling (Kubernetes, namespace voicefleet-bots): 3 sessions at once" in \
        capsys.readouterr().out


@pytest.mark.parametrize(("config", "said"), [
    ({"k8sPodOverheadCpu": "250m"}, "voicefleet:k8sPodOverheadCpu is set without k8sRuntimeClass"),
    ({"k8sPodOverheadMemory": "160Mi"}, "voicefleet:k8sPodOverheadMemory is set without k8sRuntimeClass"),
    ({"k8sRuntimeClass": "kata-qemu", "k8sPodOverheadCpu": "lots"},
     "voicefleet:k8sPodOverheadCpu must be the RuntimeClass's overhead.podFixed.cpu"),
    ({"k8sRuntimeClass": "kata-qemu", "k8sPodOverheadMemory": "160M"},
     "voicefleet:k8sPodOverheadMemory must be the RuntimeClass's overhead.podFixed.memory"),
])
def test_a_pod_overhead_without_a_runtime_class_or_of_no_quantity_is_refused_by_name(
        config: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        _said("k8s-dev", config)
