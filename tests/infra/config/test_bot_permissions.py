"""`botPermissions`: the bot's own cloud identity is granted exactly what the team names, in each
cloud's shape, under Pulumi mocks; a grant that is every permission at once is refused with the way
to write it; and the cloud SDKs' credential variables are refused in botSecrets, pointing here."""

from __future__ import annotations

import json

import pytest

from policy import rules
from stacks.config.bot_data_fence import REPOSITORY_ROLES, recording_bucket_start
from stacks.config.settings import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner

BUCKET_WRITE = [{"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::team-recordings/*"]},
                {"actions": ["bedrock:InvokeModel"], "resources": ["*"],
                 "condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"},
                               "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["team-*"]}, "Null": {"x": "true"}}}]
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ACCOUNT_SCOPE = ("/subscriptions/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/team/providers/"
                 "Microsoft.Storage/storageAccounts/teamrecordings")


def task_role_policies(run: Run) -> dict[str, dict[str, object]]:
    """Each bot task role's inline policy documents, by the role's logical name."""
    roles = {r.name for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-task") and "-bot" in r.name}
    found: dict[str, dict[str, object]] = {}
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        role = str(unwrap(policy.inputs["role"])).removesuffix("-id")
        if role in roles:
            found[role] = json.loads(unwrap(policy.inputs["policy"]))
    return found


def test_aws_statements_are_the_bot_task_roles_only_policy(stack: StackRunner) -> None:
    assert task_role_policies(stack("aws")) == {}  # none named: the task role holds nothing
    granted = task_role_policies(stack("aws", botPermissions=json.dumps(BUCKET_WRITE)))
    assert list(granted) == ["voicefleet-aws-test-bot-task"]
    assert granted["voicefleet-aws-test-bot-task"]["Statement"] == [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::team-recordings/*"]},
        {"Effect": "Allow", "Action": ["bedrock:InvokeModel"], "Resource": ["*"],
         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"},
                       "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["team-*"]}, "Null": {"x": "true"}}}]


def test_the_policy_pack_passes_the_bots_named_statements_and_refuses_a_wildcard_on_everything(
        stack: StackRunner) -> None:
    run = stack("aws", botPermissions=json.dumps(BUCKET_WRITE))
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-task-permissions")]
    document = unwrap(policy.inputs["policy"])
    assert not list(rules.iam_wildcard_actions(policy.type, {"policy": document}))
    widened = json.loads(document)
    widened["Statement"][0] |= {"Action": ["s3:*"], "Resource": "*"}
    assert list(rules.iam_wildcard_actions(policy.type, {"policy": json.dumps(widened)})) == [
        "IAM action 's3:*' is a wildcard; name the actions the role needs"]


@pytest.mark.parametrize(("permissions", "problem"), [
    ([{"actions": ["s3:*"], "resources": ["*"]}], "action 's3:\\*' is a wildcard: name each action"),
    ([{"actions": ["*"], "resources": ["arn:aws:s3:::b/*"]}], "is a wildcard"),
    ([{"actions": ["PutObject"], "resources": ["*"]}], "is not an IAM action"),
    ([{"actions": ["s3:PutObject"], "resources": ["team-recordings"]}], "is not an ARN"),
    ([{"Action": ["s3:PutObject"], "Resource": ["*"]}], "must hold actions, resources"),
    ({"s3:PutObject": "*"}, "must be a list of statements"),
    # IAM's policy grammar, said at the preview instead of as MalformedPolicyDocument at `up`
    ([{"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"], "condition": {"StringEqual": {"a": "b"}}}],
     "condition operator 'StringEqual' is not an IAM condition operator"),
    ([{"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"], "condition": {"StringEquals": "b"}}],
     "StringEquals must map each condition key to a value"),
    ([{"actions": ["s3:PutObject"], "resources": [f"arn:aws:s3:::team-recordings-{n:04}/*" for n in range(400)]}],
     "characters as a policy, over the 10240 IAM allows"),
    # what would let the bot give itself more, or reach voicefleet's own secrets
    ([{"actions": ["iam:PassRole"], "resources": ["arn:aws:iam::123456789012:role/team"]}], "changes IAM"),
    ([{"actions": ["iam:putrolepolicy"], "resources": ["*"]}], "changes IAM"),
    ([{"actions": ["sts:AssumeRole"], "resources": ["*"]}], "assumes any role: name the role's ARN"),
    ([{"actions": ["secretsmanager:GetSecretValue"], "resources": ["*"]}], "reaches voicefleet's own secrets"),
    ([{"actions": ["ssm:GetParameter"], "resources": ["arn:aws:ssm:eu-west-1:123456789012:parameter/*"]}],
     "reaches voicefleet's own secrets"),
    ([{"actions": ["kms:Decrypt"], "resources": ["arn:aws:kms:eu-west-1:123456789012:key/*"]}],
     "reaches voicefleet's own secrets"),
    # a pattern that can match the stack's own secrets (/voicefleet/<stack>/…), whatever its other wildcards
    ([{"actions": ["secretsmanager:GetSecretValue"],
       "resources": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:/voice*"]}], "may reach this stack's own"),
    ([{"actions": ["secretsmanager:GetSecretValue"],
       "resources": ["arn:aws:secretsmanager:*:*:secret:/voicefleet/aws-test/dispatcher-api-keys-??????"]}],
     "may reach this stack's own secrets"),
    # voicefleet's recordings (every caller's audio) and images (the build cache the next `up` builds from)
    ([{"actions": ["s3:GetObject"], "resources": ["*"]}],
     "s3:GetObject on '\\*' reaches every bucket and repository, .*grant it on your own bucket's ARN "
     "\\(arn:aws:s3:::team-bucket/\\*\\)"),
    ([{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::*/*"]}], "reaches this stack's recording bucket"),
    ([{"actions": ["s3:ListBucket"], "resources": ["arn:aws:s3:::voicefleet-aws-*"]}], "recording bucket"),
    ([{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::voicefleet-aws-test-rec-20261127/*"]}],
     "recording bucket \\(voicefleet-aws-test-rec…\\), every caller's audio"),
    ([{"actions": ["s3:getobject"], "resources": ["arn:aws:s3:::team-recordings/*", "arn:aws:s3:::voice?leet*"]}],
     "recording bucket"),
    ([{"actions": ["ecr:BatchGetImage"], "resources": ["*"]}], "reaches every bucket and repository"),
    ([{"actions": ["ecr:PutImage"], "resources": ["arn:aws:ecr:eu-west-1:123456789012:repository/*"]}],
     "image repositories and the build cache .*your own repository's ARN"),
    ([{"actions": ["ecr:PutImage"], "resources": ["arn:aws:ecr:*:*:repository/voicefleet-aws-test-bot"]}],
     "image repositories"),
    ([{"actions": ["ecr:PutImage"], "resources": ["arn:aws:ecr:*:*:*"]}], "image repositories"),
])
def test_aws_statements_the_policy_pack_would_refuse_are_refused_naming_the_shape(
        stack: StackRunner, permissions: object, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem) as refused:
        stack("aws", botPermissions=json.dumps(permissions))
    assert "voicefleet:botPermissions" in str(refused.value)
    assert "pulumi config set --path 'botPermissions[0].actions[0]' s3:PutObject" in str(refused.value)


def test_aws_statements_naming_the_teams_own_secret_and_role_are_granted(stack: StackRunner) -> None:
    named = [{"actions": ["secretsmanager:GetSecretValue"],
              "resources": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:team-crm-*"]},
             {"actions": ["sts:AssumeRole"], "resources": ["arn:aws:iam::210987654321:role/team-recordings"]}]
    granted = task_role_policies(stack("aws", botPermissions=json.dumps(named)))
    assert [s["Action"] for s in granted["voicefleet-aws-test-bot-task"]["Statement"]] == [  # type: ignore[attr-defined]
        ["secretsmanager:GetSecretValue"], ["sts:AssumeRole"]]


def test_aws_statements_on_the_teams_own_bucket_and_repository_are_granted(stack: StackRunner) -> None:
    """s3/ecr grants outside the stack's names pass, and so do the two actions that take `*` alone."""
    named = [{"actions": ["s3:GetObject", "s3:PutObject"], "resources": ["arn:aws:s3:::team-recordings/*",
                                                                         "arn:aws:s3:::voicefleet-aws-other-rec/*"]},
             {"actions": ["ecr:BatchGetImage"], "resources": ["arn:aws:ecr:eu-west-1:123456789012:repository/team"]},
             {"actions": ["ecr:GetAuthorizationToken", "s3:ListAllMyBuckets"], "resources": ["*"]}]
    granted = task_role_policies(stack("aws", botPermissions=json.dumps(named)))
    assert len(granted["voicefleet-aws-test-bot-task"]["Statement"]) == 3  # type: ignore[arg-type]


def test_the_fenced_names_are_the_aws_stacks_own(stack: StackRunner) -> None:
    """What the fence refuses is what the stack names its recording bucket and repositories."""
    run = stack("aws", recording="on", recordingRules="key:acme days=30")
    (bucket,) = run.of_type("aws:s3/bucket:Bucket")
    assert unwrap(bucket.inputs)["bucketPrefix"].startswith(recording_bucket_start("voicefleet-aws-test"))
    repositories = {unwrap(r.inputs)["name"] for r in run.of_type("aws:ecr/repository:Repository")}
    assert repositories <= {f"voicefleet-aws-test-{role}" for role in REPOSITORY_ROLES}, repositories


def gcp_stack(stack: StackRunner, runtime: str, **overrides: str) -> Run:
    """A GCP stack of either bot runtime (a Cloud Run bot needs the channel)."""
    if runtime == "gce":
        return stack("gcp", **overrides)
    return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"], **overrides)


@pytest.mark.parametrize("runtime", ["gce", "cloudrun"])
def test_gcp_roles_are_granted_on_the_project_to_the_bots_own_account(stack: StackRunner, runtime: str) -> None:
    run = gcp_stack(stack, runtime, botPermissions=json.dumps(["roles/pubsub.publisher"]))
    (grant,) = [r for r in run.of_type("gcp:projects/iAMMember:IAMMember") if "-permission-" in r.name]
    account = next(r for r in run.of_type("gcp:serviceaccount/account:Account")
                   if unwrap(r.inputs["accountId"]).endswith("botjob" if runtime == "cloudrun" else "bot"))
    assert unwrap(grant.inputs)["role"] == "roles/pubsub.publisher"
    assert unwrap(grant.inputs)["project"] == "vf-test"
    assert unwrap(account.inputs["accountId"]) in unwrap(grant.inputs["member"])
    assert not [r for r in gcp_stack(stack, runtime).of_type("gcp:projects/iAMMember:IAMMember")
                if "-permission-" in r.name]


@pytest.mark.parametrize(("roles", "problem"), [
    (["roles/editor"], "basic role"), (["storage.admin"], "is not a role name"), ("roles/pubsub.publisher", "list"),
    (["roles/iam.serviceAccountTokenCreator"], "reaches every account and secret in it"),
    (["roles/iam.serviceAccountUser"], "reaches every account"), (["roles/resourcemanager.projectIamAdmin"],
                                                                   "reaches every account"),
    (["roles/secretmanager.secretAccessor"], "reaches every account and secret"),
    (["roles/cloudbuild.builds.editor"], "reaches every account"),
    (["roles/logging.logWriter"], "holds roles/logging.logWriter already"),
    # voicefleet's recordings and images: every bucket and repository of the project
    (["roles/storage.objectViewer"], "reaches every bucket in it, voicefleet's recordings and images among them: "
                                     "grant it on your own bucket"),
    (["roles/storage.admin"], "reaches every bucket"),
    (["roles/artifactregistry.writer"], "reaches every repository in it, .*grant it on your own repository"),
    # a role of another service may hold storage or registry permissions (Dataflow Admin: storage.objects.create),
    # and a custom role may hold anything: only the listed predefined roles are taken
    (["roles/dataflow.admin"], "roles/dataflow.admin is a role whose permissions the stack cannot see: granted on "
                               "the project, any storage or registry permission in it reaches every bucket"),
    (["roles/dataflow.worker"], "Name roles of roles/pubsub.publisher, "),
    # roles whose jobs, batches or scans Google runs as a service agent that reaches the project's buckets
    (["roles/aiplatform.user"], "roles/aiplatform.user is a role whose permissions the stack cannot see.*Vertex AI's "
                                "models: docs/pulumi.md"),
    (["roles/speech.client"], "roles/speech.client is a role whose permissions the stack cannot see"),
    (["roles/cloudtranslate.user"], "roles/cloudtranslate.user is a role whose permissions the stack cannot see"),
    (["roles/dialogflow.client"], "roles/dialogflow.client is a role whose permissions the stack cannot see"),
    (["roles/bigquery.dataEditor"], "roles/bigquery.dataEditor is a role whose permissions the stack cannot see"),
    # Dataform runs a repository's code as its default service account; Spanner's CREATE MODEL, Vertex AI as its agent.
    (["roles/bigquery.jobUser"], "roles/bigquery.jobUser is a role whose permissions the stack cannot see"),
    (["roles/spanner.databaseUser"], "roles/spanner.databaseUser is a role whose permissions the stack cannot see"),
    (["projects/vf-test/roles/teamReader"], "is a custom role, whose permissions the stack cannot see.* grant it on "
                                            "your own resources"),
])
def test_gcp_roles_that_are_every_permission_or_no_role_are_refused(
        stack: StackRunner, roles: object, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:botPermissions .*{problem}"):
        stack("gcp", botPermissions=json.dumps(roles))


def test_each_listed_role_is_a_grant_of_its_own(stack: StackRunner) -> None:
    roles = ["roles/datastore.user", "roles/pubsub.publisher"]
    run = stack("gcp", botPermissions=json.dumps(roles))
    assert sorted(unwrap(r.inputs["role"]) for r in run.of_type("gcp:projects/iAMMember:IAMMember")
                  if "-permission-" in r.name) == sorted(roles)


def test_azure_role_assignments_go_to_the_bots_identity_on_their_scope(stack: StackRunner) -> None:
    run = stack("azure", botPermissions=json.dumps([{"role": BLOB_CONTRIBUTOR, "scope": ACCOUNT_SCOPE}]))
    (grant,) = [r for r in run.of_type("azure-native:authorization:RoleAssignment") if "bot-permission" in r.name]
    inputs = unwrap(grant.inputs)
    assert inputs["scope"] == ACCOUNT_SCOPE
    assert inputs["roleDefinitionId"].endswith(f"/providers/Microsoft.Authorization/roleDefinitions/{BLOB_CONTRIBUTOR}")
    bot_identity = run.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-bot")
    assert inputs["principalId"] == bot_identity.outputs["principalId"]


def test_one_azure_role_on_one_scope_written_twice_is_one_assignment(stack: StackRunner) -> None:
    twice = [{"role": BLOB_CONTRIBUTOR, "scope": ACCOUNT_SCOPE},
             {"role": BLOB_CONTRIBUTOR.upper(), "scope": ACCOUNT_SCOPE.replace("resourceGroups", "resourcegroups")}]
    run = stack("azure", botPermissions=json.dumps(twice))
    (grant,) = [r for r in run.of_type("azure-native:authorization:RoleAssignment") if "bot-permission" in r.name]
    assert unwrap(grant.inputs)["scope"] == ACCOUNT_SCOPE


@pytest.mark.parametrize(("assignment", "problem"), [
    ({"role": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "scope": ACCOUNT_SCOPE}, "Owner holds every action"),
    ({"role": BLOB_CONTRIBUTOR, "scope": "/subscriptions/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"},
     "never a whole subscription"),
    ({"role": "Storage Blob Data Contributor", "scope": ACCOUNT_SCOPE}, "is not a role definition"),
    ({"role": BLOB_CONTRIBUTOR, "scope": ACCOUNT_SCOPE.replace("0b1f6a2e", "99999999")},
     "outside this stack's subscription"),
    ({"role": "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User, on voicefleet's own group
      "scope": "/subscriptions/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourcegroups/VOICEFLEET-AZURE-TEST/providers/"
               "Microsoft.KeyVault/vaults/v"},
     "this stack's own resource group"),
])
def test_azure_assignments_too_broad_or_unreadable_are_refused(
        stack: StackRunner, assignment: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:botPermissions .*{problem}"):
        stack("azure", botPermissions=json.dumps([assignment]))


@pytest.mark.parametrize(("annotation", "value", "unreachable"), [
    ("eks.amazonaws.com/role-arn", "arn:aws:iam::123456789012:role/voice-bot", None),
    ("iam.gke.io/gcp-service-account", "voice-bot@team-project.iam.gserviceaccount.com", "169.254.169.254"),
    ("azure.workload.identity/client-id", "6f3b2a1c-0d4e-4f5a-9b8c-7d6e5f4a3b2c", "azure.workload.identity/use"),
])
def test_k8s_workload_identity_is_an_annotation_on_the_bots_service_account(
        k8s_stack: StackRunner, annotation: str, value: str, unreachable: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    accounts = {unwrap(r.inputs["metadata"])["name"]: unwrap(r.inputs["metadata"])
                for r in k8s_stack(botPermissions=json.dumps({annotation: value})).of_type(
                    "kubernetes:core/v1:ServiceAccount")}
    assert accounts["voicefleet-bot"]["annotations"] == {annotation: value}
    assert "annotations" not in accounts["voicefleet-dispatcher"]
    # The plan says when the bots cannot use it as they run today (the network policy, the pod label).
    said = [message for message in warned if "the bots cannot use it yet" in message]
    assert (said == []) if unreachable is None else (len(said) == 1 and unreachable in said[0])


@pytest.mark.parametrize(("permissions", "problem"), [
    ({"eks.amazonaws.com/role-arn": "voice-bot"}, "must be an IAM role ARN"),
    ({"example.com/identity": "x"}, "is not a workload identity annotation"),
])
def test_k8s_annotations_other_than_workload_identity_are_refused(
        k8s_stack: StackRunner, permissions: object, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:botPermissions .*{problem}"):
        k8s_stack(botPermissions=json.dumps(permissions))


@pytest.mark.parametrize("name", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS",
                                  "AZURE_CLIENT_SECRET"])
def test_a_cloud_sdks_credential_in_bot_secrets_is_refused_naming_bot_permissions(
        stack: StackRunner, name: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:botSecrets key {name} is the .* SDK's own credential"
                                            ".*voicefleet:botPermissions"):
        stack("aws", secrets={**SECRETS, "voicefleet:botSecrets": json.dumps({name: "SENTINEL-x"})})


@pytest.mark.parametrize(("secrets", "problem"), [
    ({"AWS_ACCESS_KEY_ID\n": "SENTINEL-x"}, "is not an environment variable name"),  # re's `$` passes a newline
    ({"LD_PRELOAD": "/app/hook.so"}, "decides which code the bot's interpreter loads"),
    ({"DEEPGRAM_API_KEY": "SENTINEL-dg\nBOT_CHANNEL_TOKEN=forged"}, "DEEPGRAM_API_KEY's value has more than one line"),
])
def test_no_bot_secret_sets_a_variable_the_rule_refuses(
        stack: StackRunner, secrets: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:botSecrets .*{problem}") as refused:
        stack("gcp", secrets={**SECRETS, "voicefleet:botSecrets": json.dumps(secrets)})
    assert "SENTINEL" not in str(refused.value) and "forged" not in str(refused.value)


def test_a_setting_with_a_clouds_prefix_that_no_sdk_reads_reaches_the_bot(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, "voicefleet:botSecrets": json.dumps({"AWS_BUCKET_NAME": "SENTINEL-b"})})
    task = next(r for r in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
                if unwrap(r.inputs["family"]).endswith("-bot"))
    (definition,) = json.loads(unwrap(task.inputs["containerDefinitions"]))
    assert "AWS_BUCKET_NAME" in {s["name"] for s in definition["secrets"]}


def test_the_policy_pack_refuses_all_permission_roles_and_passes_the_bots_named_ones(stack: StackRunner) -> None:
    granted = stack("gcp", botPermissions=json.dumps(["roles/pubsub.publisher"]))
    for registration in granted.registrations:
        assert not list(rules.all_permission_roles(registration.type, unwrap(registration.inputs))), registration
    assert list(rules.all_permission_roles("gcp:projects/iAMMember:IAMMember", {"role": "roles/editor"}))
    owner = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert list(rules.all_permission_roles("azure-native:authorization:RoleAssignment", {"roleDefinitionId": owner}))
    assert not list(rules.all_permission_roles("azure-native:authorization:RoleAssignment",
                                               {"roleDefinitionId": owner.replace("8e3af657", "ba92f5b4")}))
