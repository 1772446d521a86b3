"""Which environment variable names a team may give its bot: one rule for a stack's `botSecrets` and a
local dispatcher's `LOCAL_BOT_ENV`, so a name refused in the cloud is refused on the laptop first.

Two kinds of name are not the team's:
- voicefleet's own: what it sets on every bot (its launch values, the bot host's runtime) and the
  dispatcher's secrets, which a bot never gets. A team's value would silently lose, or leak one.
- the cloud SDKs' credential chains (`AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`,
  `AZURE_CLIENT_SECRET`, …): a deployed bot's SDK finds its own identity (the ECS task role through the
  task's credentials endpoint, the VM's or job's service account and the container group's managed
  identity through the metadata server), and the stack grants that identity what the team names in
  `botPermissions`. A long-lived key in the bot's environment would win over that chain.
- the dynamic loader's and the interpreter's say over which code runs (`LD_PRELOAD`, `PYTHONHOME`, …):
  voicefleet's bot host runs in the same process, and a bot's own code belongs in its project.
Any other name is the team's, `AWS_BUCKET_NAME` as much as `DEEPGRAM_API_KEY`.
"""

from __future__ import annotations

from botchannel.contract import (
    CHANNEL_TOKEN_VARIABLE,
    CHANNEL_URL_VARIABLE,
    CLOUD_RUN_EXECUTION_VARIABLE,
    IDENTITY_FD_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
)

# The dispatcher's secrets and what the launcher sets per bot: never inherited by a local bot either.
DISPATCHER_OWN = frozenset({
    "DISPATCHER_API_KEYS", "DISPATCHER_ADMIN_KEYS", CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE,
    "TURN_SHARED_SECRET", "PHONE_TOKEN_SECRET", "DAILY_API_KEY", "DAILY_DIALIN_SECRET", "DAILY_WEBHOOK_SECRET",
    "FLY_API_TOKEN",
    MACHINE_ID_VARIABLE, IMAGE_VARIABLE, "MAX_SESSION_SECONDS", "DAILY_ROOM_URL", "DAILY_TOKEN", "LOCAL_BOT_ENV",
    "WEBHOOK_SECRET", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TELNYX_TRANSFER_API_KEY",
})  # fmt: skip
# SIP_EDGE_: the edge's control secret and URL, the stack's secrets for the edge; WHATSAPP_: Meta's token and
# app secret, which answer and hang up every call of the business's numbers (the dispatcher's alone).
DISPATCHER_OWN_PREFIXES = ("REDIS_", "VOICEFLEET_SESSION", "VOICEFLEET_BODY", "VOICEFLEET_ICE_CONFIG",
                           "SIP_EDGE_", "WHATSAPP_")
# What the bot image and the stacks set on every deployed bot (images/, stacks/gcp/bot_job.py), and the
# prefixes of voicefleet's and its platforms' own variables (the ECS agent sets ECS_CONTAINER_METADATA_URI*).
SET_ON_BOT = frozenset({"BOT_FILE", "BOT_TRANSPORT", "BOT_MODELS_DIR", "BOT_TURN_TRANSPORT", "PATH", "PYTHONPATH",
                        "HOME", IDENTITY_VARIABLE, IDENTITY_FD_VARIABLE, CLOUD_RUN_EXECUTION_VARIABLE})
VOICEFLEET_PREFIXES = ("VOICEFLEET_", "BOT_", "ECS_", "GCE_", "TURN_", "REDIS_")
# What the bot host proves its machine with (bot/identity.py, bot/channel_session.py): the platform's,
# or voicefleet's; a team's value would point the proof elsewhere and the channel would refuse the bot.
BOT_HOST_IDENTITY = frozenset({"AWS_ENDPOINT_URL_STS", "MODAL_IDENTITY_TOKEN", "MODAL_IDENTITY_TOKEN_FILE",
                               "FLY_MACHINE_ID"})
# The SDKs' default credential chains, by cloud: botocore's providers, google-auth's
# application default credentials, azure-identity's EnvironmentCredential, WorkloadIdentityCredential
# and ManagedIdentityCredential.
CLOUD_CREDENTIALS = {
    "AWS": frozenset({
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EXECUTION_ENV",
    }),
    # CLOUDSDK_CONFIG: where google-auth looks for gcloud's application default credentials file.
    "Google Cloud": frozenset({"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_ACCESS_TOKEN", "CLOUDSDK_CONFIG",
                               "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", "GCE_METADATA_HOST", "GCE_METADATA_IP",
                               "GCE_METADATA_ROOT"}),
    "Azure": frozenset({
        "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
        "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_REGIONAL_AUTHORITY_NAME", "AZURE_TOKEN_CREDENTIALS",
    }),
}  # fmt: skip
# The loader's and the interpreter's variables that choose which code runs (PATH and PYTHONPATH are
# SET_ON_BOT's): harmless ones such as PYTHONUNBUFFERED stay the team's.
CODE_LOADERS = frozenset({"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONHOME", "PYTHONUSERBASE",
                          "PYTHONPLATLIBDIR", "PYTHONSAFEPATH", "PYTHONSTARTUP", "PYTHONINSPECT", "BASH_ENV"})
PERMISSIONS_KEY = "botPermissions"  # the stack key granting the bot its access (stacks/config/bot_permissions.py)


def dispatcher_own(name: str) -> bool:
    """The dispatcher's alone: never in a bot's environment, whatever names it."""
    return name in DISPATCHER_OWN or name.startswith(DISPATCHER_OWN_PREFIXES)


def credential_cloud(name: str) -> str | None:
    """The cloud whose SDK reads `name` in its credential chain, or None."""
    return next((cloud for cloud, names in CLOUD_CREDENTIALS.items() if name in names), None)


def refusal(name: str) -> str | None:
    """Why a team may not set `name` for its bot, with the way to go instead; None when it may."""
    if (cloud := credential_cloud(name)) is not None:
        return (f"{name} is the {cloud} SDK's own credential variable: a deployed bot's SDK finds its identity itself "
                "(the ECS task role, the VM's or job's service account, the container group's managed identity), and "
                f"the stack grants that identity exactly what voicefleet:{PERMISSIONS_KEY} names "
                "(docs/bring-your-bot.md, \"The bot's own cloud access\"); on a laptop the SDK reads your own login "
                "from your home folder, which a local bot has")
    if name in CODE_LOADERS:
        return (f"{name} decides which code the bot's interpreter loads, voicefleet's bot host in the same process "
                "included: put the bot's own code and libraries in its project (its files, its lock)")
    if dispatcher_own(name) or name in SET_ON_BOT | BOT_HOST_IDENTITY or name.startswith(VOICEFLEET_PREFIXES):
        return (f"{name} is set by voicefleet itself on every bot, or kept from it: choose another name (any other "
                "name is yours, e.g. AWS_BUCKET_NAME)")
    return None
