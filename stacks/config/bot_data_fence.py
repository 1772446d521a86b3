"""What of voicefleet's own data a bot's `botPermissions` must not reach: the recordings and the images.

The recording bucket holds every caller's audio (docs/recording.md: the bots get nothing of it), and
the registry holds the images and the build cache the next `up` builds from (images/component.py): a
bot that could write there could plant code in every later release. A grant meant for the team's own
bucket or repository must not open them too.

AWS: the stack names them from its prefix (`<project>-<stack>`): the recording bucket
`<prefix>-rec-<generated>` (stacks/aws/stack.py, its name cut to S3's prefix limit), the repositories
`<prefix>-<role>` (stacks/aws/registry.py). An `s3:` or `ecr:` action is refused on `*` and on any ARN
whose pattern may name one of them (IAM's `*` and `?`, matched as IAM matches), except the few actions
that have no resource-level form and reach no object or image. GCP: a role granted on the project
reaches every bucket and repository in it, voicefleet's among them, through whatever storage or registry
permissions it holds, whatever its name (Dataflow Admin writes objects), or through a job it may start
that Google runs as a service agent holding the project's storage (a Vertex AI custom job). The
configuration names a role, not its permissions, so only predefined roles known to hold none of those are
taken (GCP_BOT_ROLES); a custom role's permissions are the team's to change at any time, and it is refused too.
"""

from __future__ import annotations

import re

FENCED_SERVICES = ("s3", "ecr")
# Actions of those services that take `*` alone and read no object or image.
RESOURCELESS = ("ecr:getauthorizationtoken", "s3:listallmybuckets")
REPOSITORY_ROLES = ("bot", "dispatcher", "bot-webrtc")  # stacks/aws/stack.py's registry roles
GCP_PROJECT_DATA = ("roles/storage.", "roles/artifactregistry.")
# Predefined roles with no storage.* or artifactregistry.* permission and none that makes Google run work on a
# bucket as a service agent (a job, a batch, an import or export): each read in iann0036/iam-dataset
# gcp/roles/NAME.json (2026-11). Left out for that: aiplatform.user (customJobs.create runs as the Vertex AI
# Custom Code Service Agent, which holds storage.objects.* on the project), speech.client (batch recognize of
# gs:// audio), cloudtranslate.user (batchPredict, batchDocPredict write gs:// output), dialogflow.client
# (conversations whose profile and agent export audio), bigquery.dataEditor (dataplex.datascans.create/run
# scan as the Dataplex service agent), bigquery.jobUser (dataform.repositories.create: Google's Dataform
# access-control page says its holder "can execute code in BigQuery using the default Dataform service account"),
# spanner.databaseUser (updateDdl's CREATE MODEL makes Spanner's service agent call Vertex AI predictions).
# Add one only after reading its permissions so.
GCP_BOT_ROLES = (
    "roles/pubsub.publisher", "roles/pubsub.subscriber", "roles/datastore.user", "roles/cloudsql.client",
    "roles/cloudtrace.agent", "roles/monitoring.metricWriter",
)
# The recording bucket's name starts with `<prefix>-rec` cut to S3's bucket_prefix limit less its dash
# (stacks/aws/stack.py, stacks/aws/recordings.py MAX_BUCKET_PREFIX; tests/infra/config/test_bot_permissions.py
# holds the two together).
RECORDING_BUCKET_PREFIX_CHARACTERS = 36
_ARN = re.compile(r"^arn:[^:]*:(?P<service>[^:]*):[^:]*:[^:]*:(?P<resource>.*)$")


def _pattern(text: str) -> re.Pattern[str]:
    """IAM's resource pattern as a regular expression: `*` any run of characters, `?` any one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text))


def _may_start_with(pattern: str, prefix: str) -> bool:
    """Whether a pattern (IAM wildcards) may match some text that starts with `prefix`: its text before the
    first wildcard and the prefix must not be one a prefix of the other (a literal must start with it)."""
    literal = re.split(r"[*?]", pattern, maxsplit=1)[0]
    if literal == pattern:
        return pattern.startswith(prefix)
    return prefix.startswith(literal) or literal.startswith(prefix)


def recording_bucket_start(stack_prefix: str) -> str:
    """What the AWS stack's recording bucket's name starts with."""
    return f"{stack_prefix}-rec"[:RECORDING_BUCKET_PREFIX_CHARACTERS].rstrip("-")


def aws_own_data(action: str, resources: list[str], stack_prefix: str) -> str | None:
    """Why an `s3:`/`ecr:` action on these resources may reach the stack's recordings or images; None: it
    may not."""
    service = action.split(":", 1)[0].lower()
    if service not in FENCED_SERVICES or action.lower() in RESOURCELESS:
        return None
    bucket = recording_bucket_start(stack_prefix)
    repositories = [f"repository/{stack_prefix}-{role}" for role in REPOSITORY_ROLES]
    for resource in resources:
        arn = _ARN.match(resource)
        if resource == "*" or arn is None:
            reached = "every bucket and repository, voicefleet's recordings and images among them"
        elif arn["service"] not in ("*", service) and "*" not in arn["service"]:
            continue
        elif service == "s3" and _may_start_with(arn["resource"], bucket):
            reached = f"this stack's recording bucket ({bucket}…), every caller's audio"
        elif service == "ecr" and any(_pattern(arn["resource"]).fullmatch(name) for name in repositories):
            reached = "this stack's image repositories and the build cache its next `up` builds from"
        else:
            continue
        own = "arn:aws:s3:::team-bucket/*" if service == "s3" else "arn:aws:ecr:REGION:ACCOUNT:repository/team-repo"
        return (f"{action} on {resource!r} reaches {reached}: grant it on your own "
                f"{'bucket' if service == 's3' else 'repository'}'s ARN ({own}), outside this stack's names "
                f"({stack_prefix}-…)")
    return None


def gcp_own_data(role: str) -> str | None:
    """Why a role granted on the project may reach voicefleet's recordings or images; None: it does not."""
    if not role.startswith(GCP_PROJECT_DATA):
        if role in GCP_BOT_ROLES:
            return None
        what = "a custom role, whose permissions" if not role.startswith("roles/") else "a role whose permissions"
        return (f"{role} is {what} the stack cannot see: granted on the project, any storage or registry "
                "permission in it reaches every bucket and repository, voicefleet's recordings and images among "
                f"them. Name roles of {', '.join(GCP_BOT_ROLES)}, or grant it on your own resources (your "
                "bucket, topic, dataset) outside this stack (docs/bring-your-bot.md, \"The bot's own cloud "
                "access: `botPermissions`\"; Vertex AI's models: docs/pulumi.md, \"Vertex AI from a GCP bot\")")
    what, command = (("bucket", "storage buckets") if role.startswith("roles/storage.") else
                     ("repository", "artifacts repositories"))
    return (f"{role} on the project reaches every {what} in it, voicefleet's recordings and images among them: "
            f"grant it on your own {what} (gcloud {command} add-iam-policy-binding) outside this stack")

