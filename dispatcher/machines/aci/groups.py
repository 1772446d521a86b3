"""A container group as the aci provider writes and reads it: its name, tags, body and state.

Names: `<prefix>-<session id>` for a session, `<prefix>-idle-<bot id>` for a reserve bot (which
keeps its name once claimed); both fit ACI's 1–63 lowercase alphanumerics or '-'. Tags carry what
any replica needs to answer for the session (its id, body digest, transport, when it started, the
release it runs: kept through a reserve group's claim).
Every launch value is a `secureValue`: ARM never returns one on GET, so whoever may read the group
(Reader on the resource group) sees names, not the bot's credential; only the deployment's plain
bot settings (ACI_BOT_SETTINGS: log format, the trace collector) are plain values. `restartPolicy: Never`: the
default, Always, would restart a bot that ended and rejoin a finished session.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.aci.settings import ENV_NAME, AciSettings
from dispatcher.machines.base import Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import SESSION_VARIABLES

TAG_SESSION = "voicefleet-session"
TAG_DIGEST = "voicefleet-digest"
TAG_TRANSPORT = "voicefleet-transport"
TAG_RELEASE = "voicefleet-release"
TAG_CREATED = "voicefleet-created"  # epoch seconds of the create (ACI reports no creation time)
TAG_CLAIMED = "voicefleet-claimed"  # epoch seconds of a reserve group's claim: the session's start
TAG_IDLE = "voicefleet-idle"  # a reserve group's bot id, until it is claimed
TAG_PREFIX = "voicefleet-prefix"  # the deployment's ACI_GROUP_PREFIX: another's `<prefix>-idle` is not its own
TAG_SECRETS = "voicefleet-secrets"  # a reserve group's ACI_BOT_SECRETS versions, digested (secrets_digest)
IDLE_INFIX = "idle-"
SESSION_ID = re.compile(r"[0-9a-f]{24}")  # a session id as the dispatcher makes it: a session's group is named for it
CONTAINER = "bot"
# Every variable this provider sets on a group besides the deployment's own (ACI_BOT_SETTINGS,
# ACI_BOT_SECRETS, ACI_BOT_ENV_FROM): the Azure stack's launch policy admits these names and no
# others (stacks/azure/launch_policy.py), and group_body refuses any other, so the two cannot drift.
LAUNCH_VARIABLES: tuple[str, ...] = (*SESSION_VARIABLES, CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE,
                                     IMAGE_VARIABLE, MACHINE_ID_VARIABLE)
_BOT_ID = re.compile(r"^[a-z0-9][-a-z0-9]{0,23}$")


def idle_name(settings: AciSettings, bot_id: str) -> str:
    if not _BOT_ID.match(bot_id):
        raise MachinesError("aci_rejected", f"reserve bot id {bot_id!r} is not ≤ 24 lowercase letters, digits or '-'")
    return f"{settings.prefix}-{IDLE_INFIX}{bot_id}"


def secrets_digest(settings: AciSettings) -> str:
    """The bot secrets' versions a group was launched with: their URIs digested (never a value). A
    rotated secret is a new version, so an idle group of the old keys no longer matches."""
    pinned = ",".join(f"{name}={uri}" for name, uri in sorted(settings.bot_secrets.items()))
    return hashlib.sha256(pinned.encode()).hexdigest()[:16]


def ours(settings: AciSettings, group: Mapping[str, Any]) -> bool:
    """Not another deployment's group (whose prefix may extend this one's): a group created before
    the prefix tag existed has none and counts as this deployment's."""
    return bool((group.get("tags") or {}).get(TAG_PREFIX, settings.prefix) == settings.prefix)


def launch_variables(settings: AciSettings, env_from: Iterable[str] = ()) -> frozenset[str]:
    """The names a group of this deployment may carry: LAUNCH_VARIABLES and the deployment's own."""
    return frozenset((*LAUNCH_VARIABLES, *settings.bot_settings, *settings.bot_secrets, *env_from))


def group_body(settings: AciSettings, env: Mapping[str, str], tags: Mapping[str, str], *,
               image: str | None = None, env_from: Iterable[str] = ()) -> dict[str, Any]:
    """`env` goes in as secure values; the deployment's plain bot settings (ACI_BOT_SETTINGS) as
    plain ones, unless `env` sets the same name. `env_from`: the ACI_BOT_ENV_FROM names `env` may hold."""
    bad = [name for name in env if not ENV_NAME.match(name)]
    if bad:
        raise MachinesError("aci_rejected", f"environment names ACI refuses: {', '.join(sorted(bad))}")
    unknown = set(env) - launch_variables(settings, env_from)
    if unknown:  # a new variable must join LAUNCH_VARIABLES, or the stack's launch policy refuses the group
        raise MachinesError("aci_rejected", f"variables outside LAUNCH_VARIABLES: {', '.join(sorted(unknown))}")
    plain = [{"name": name, "value": value} for name, value in settings.bot_settings.items() if name not in env]
    container = {"name": CONTAINER, "properties": {
        "image": image or settings.bot_image,
        "resources": {"requests": {"cpu": settings.cpu, "memoryInGB": settings.memory_gb}},
        "environmentVariables": plain + [{"name": name, "secureValue": value} for name, value in env.items()],
    }}
    properties: dict[str, Any] = {"osType": "Linux", "restartPolicy": "Never", "sku": "Standard",
                                  "containers": [container]}
    body: dict[str, Any] = {"location": settings.location, "tags": {**tags, TAG_PREFIX: settings.prefix,
                                                                   TAG_CREATED: str(int(time.time()))},
                            "properties": properties}
    if settings.registry_identity:  # pulled with a user-assigned identity holding AcrPull: no registry password
        properties["imageRegistryCredentials"] = [{"server": settings.registry_server,
                                                   "identity": settings.registry_identity}]
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {settings.registry_identity: {}}}
    if settings.subnet_id:
        properties["subnetIds"] = [{"id": settings.subnet_id}]
    return body


def deleting(raw: Mapping[str, Any]) -> bool:
    """ARM is deleting the group (its container stops first): it is ended, and its name not yet free."""
    return (raw.get("properties") or {}).get("provisioningState") == "Deleting"


def to_machine(raw: Mapping[str, Any]) -> Machine:
    tags = raw.get("tags") or {}
    properties = raw.get("properties") or {}
    containers = properties.get("containers") or [{}]
    view = (containers[0].get("properties") or {}).get("instanceView") or {}
    current = view.get("currentState") or {}
    provisioning = str(properties.get("provisioningState", ""))
    group_state = str((properties.get("instanceView") or {}).get("state", ""))
    detail = None
    if provisioning == "Failed":
        state, detail = MachineState.FAILED, f"provisioning failed: {current.get('detailStatus') or 'see the group'}"
    elif current.get("state") == "Terminated":
        code = current.get("exitCode")
        state = MachineState.ENDED if code == 0 else MachineState.FAILED
        detail = f"exit code {code}"
    elif deleting(raw) or group_state == "Stopped":
        state, detail = MachineState.ENDED, "container group stopped"
    elif current.get("state") == "Running":
        state = MachineState.STARTED
    else:
        state = MachineState.STARTING
    created = tags.get(TAG_CLAIMED) or tags.get(TAG_CREATED) or ""
    return Machine(
        session_id=tags.get(TAG_SESSION, ""),
        machine_id=str(raw.get("name")),
        state=state,
        created_at=float(created) if created.isdigit() else 0.0,
        body_digest=tags.get(TAG_DIGEST),
        detail=detail,
        transport=tags.get(TAG_TRANSPORT),
        release=tags.get(TAG_RELEASE),
    )
