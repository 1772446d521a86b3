"""`MACHINES=aci`: one Azure Container Instances container group per session, through ARM's REST API.

A launch reads the session's group first and PUTs it only when there is none (ARM's PUT is create
*or update*: a second PUT would replace a running bot's values and restart it). The PUT answers 201
with an `Azure-AsyncOperation` URL; the create may still fail after that (quota, an image ACI cannot
pull), which the group's `provisioningState` or, for a group never made, that operation says, and
`status` reads both. `DELETE` ends the session (202 with `Location`, or 204: already gone).

Limits, counted once for the deployment through the coordination store (dispatcher/machines/creates.py):
creates and deletes together (ACI's per-region budget), ARM writes and ARM reads (the subscription's
buckets): see settings.py. A 429 is retried after its `Retry-After`, within the retry deadline;
`ContainerGroupQuotaReached` is `aci_capacity` (503 with Retry-After). Why ARM's REST API through
aiohttp and no Azure SDK: docs/providers.md ("Azure Container Instances").
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Self

from botchannel.contract import IMAGE_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.aci.auth import ArmToken, ArmTokens
from dispatcher.machines.aci.groups import (
    IDLE_INFIX,
    TAG_CLAIMED,
    TAG_DIGEST,
    TAG_RELEASE,
    TAG_SESSION,
    TAG_TRANSPORT,
    group_body,
    ours,
    to_machine,
)
from dispatcher.machines.aci.identity import AciGroupIdentity
from dispatcher.machines.aci.settings import API_VERSION, AciSettings
from dispatcher.machines.aci.vault import KEY_VAULT_RESOURCE, BotSecrets
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import bot_environment, session_transport
from dispatcher.machines.cells import CellTurnedAway
from dispatcher.machines.creates import Creates
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, create_request, provider_request, retry_after_of
from dispatcher.recent import Recent
from dispatcher.store.coordination import CreateLimits
from voicefleet_settings.read import setting_text

# Refusals that are a full region, not a wrong request: worth trying again later.
CAPACITY_CODES = frozenset({"ContainerGroupQuotaReached", "StandardCoresQuotaReached", "ServiceUnavailable",
                            "SkuNotAvailable", "ResourceQuotaExceeded"})
CAPACITY_RETRY_AFTER = 60.0
# ARM's refusal of a group whose image its registry lacks (or will not give this identity): 400, at the PUT.
INACCESSIBLE_IMAGE = "InaccessibleImage"
# The stack's launch policy (stacks/azure/launch_policy.py) refusing the group: 403 at the PUT. A release the
# last `pulumi up` added is admitted once Azure applies the updated definition, which is not instant.
POLICY_REFUSED = "RequestDisallowedByPolicy"
POLICY_RETRY_AFTER = 60.0
BOT_CHANNEL_URL = "BOT_CHANNEL_URL"


def arm_error(response: HttpResponse) -> tuple[str, str]:
    """ARM's `{"error": {"code", "message"}}`, or the status when the answer is not that."""
    try:
        error = response.json()["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, AttributeError, TypeError):
        return "", f"HTTP {response.status_code}"


class AciMachines:
    name = "aci"

    def __init__(self, settings: AciSettings, coordination: CreateLimits, *, token: ArmTokens,
                 channel_url: str | None = None, bot_env: Mapping[str, str] | None = None,
                 bot_secrets: BotSecrets | None = None, cell: str | None = None) -> None:
        """`cell`: this provider is one subscription of several (aci/cells.py): its create, write and
        read budgets are that cell's (`aci:<cell>`, the bucket its cold starts take from), and its
        throttling and quota answers can turn a launch away at once (`run_session`)."""
        self.settings = settings
        self.bot_image = settings.bot_image
        self.cell = cell
        self._channel_url = channel_url
        self._bot_env = dict(bot_env or {})  # ACI_BOT_ENV_FROM: the bot's service keys, as secure values
        self._bot_secrets = bot_secrets  # ACI_BOT_SECRETS: read from Key Vault once, as secure values
        # ACI's create budget and ARM's buckets are each subscription's (and region's): a cell counts its own.
        groups = (cell,) if cell else ()
        self.creates = Creates(self.name, coordination, settings.create_rate, groups=groups)
        self._writes = Creates(self.name, coordination, settings.write_rate, groups=groups, action="write")
        self._reads = Creates(self.name, coordination, settings.read_rate, groups=groups, action="read")
        self._client = HttpClient(settings.arm_endpoint, timeout=settings.timeout,
                                  ca_file=settings.ca_bundle or None)
        self._token = token
        self._backoff = Backoff(attempts=5, base=0.5, cap=8.0, deadline=settings.retry_deadline)
        self._operations: Recent[str, str] = Recent()  # session id → its create's Azure-AsyncOperation URL
        self._claimed: Recent[str, str] = Recent()  # session id → the claimed reserve group serving it
        self.identity = AciGroupIdentity(self._identity_group, settings.prefix)
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled

    @classmethod
    def from_env(cls, env: Mapping[str, str], coordination: CreateLimits, **kw: Any) -> Self:
        settings = AciSettings.from_env(env)
        return cls(settings, coordination, token=arm_token(settings, env),
                   channel_url=env.get(BOT_CHANNEL_URL, "").strip() or None, bot_env=bot_env_from(env),
                   bot_secrets=bot_secrets_from(settings, env), **kw)

    @property
    def token(self) -> ArmTokens:
        """Its ARM sign-in, which a caller reading other ARM resources may share (the drain)."""
        return self._token

    def group_name(self, session_id: str) -> str:
        return f"{self.settings.prefix}-{session_id}"

    async def _request(self, method: str, url: str, *, create: bool = False, turn_away: bool = False,
                       **kw: Any) -> HttpResponse:
        """One ARM call (`url`: a path under the resource group's groups, or an absolute ARM URL), its
        turn taken from the deployment's read or write budget first. `create`: a PUT that makes a
        group, never sent again once its answer is lost (outbound/retry.py `create_request`);
        `turn_away`: its 429 is answered at once, not retried (another cell takes the launch)."""
        await (self._reads if method == "GET" else self._writes).cold_turn()
        if url.startswith("/") or not url:
            url = self.settings.groups_path + url
            kw["params"] = {**kw.get("params", {}), "api-version": API_VERSION}
        headers = {**kw.pop("headers", {}), **await self._token.headers()}
        if create:
            return await create_request(self.name, self._client, method, url, backoff=self._backoff,
                                        error=MachinesError, headers=headers,
                                        retry_throttled=lambda response: not turn_away, **kw)
        return await provider_request(self.name, self._client, method, url, backoff=self._backoff,
                                      error=MachinesError, headers=headers, **kw)

    @staticmethod
    def _failed(response: HttpResponse, what: str) -> MachinesError:
        code, message = arm_error(response)
        return refusal(MachinesError, "aci", response.status_code, f"ARM refused to {what}: {code} {message}",
                       capacity_retry_after=CAPACITY_RETRY_AFTER if code in CAPACITY_CODES else None)

    def _create_failed(self, response: HttpResponse, what: str, image: str | None, release: str) -> MachinesError:
        """A release's image ACI cannot pull (ARM's 400 `InaccessibleImage`) is the release's fault, said
        so; anything else is ARM's refusal."""
        code, message = arm_error(response)
        if image and code == INACCESSIBLE_IMAGE:
            return ReleaseImageMissing(release, "ACI", f"ACI cannot pull image {image}: {code} {message[:300]}")
        if code == POLICY_REFUSED:
            return MachinesError("aci_policy_pending", f"the stack's launch policy refused release {release!r}'s "
                                 f"group ({image or self.bot_image}): a release the last `pulumi up` added is admitted "
                                 "once Azure applies the updated policy, which can take minutes; try again then, and "
                                 "if it persists, `pulumi up` lists the release in the policy",
                                 retry_after=POLICY_RETRY_AFTER)
        return self._failed(response, what)

    async def _get(self, name: str) -> dict[str, Any] | None:
        response = await self._request("GET", f"/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failed(response, f"read container group {name}")
        return dict(response.json())

    async def _identity_group(self, name: str, session_id: str | None) -> dict[str, Any] | None:
        """The group a bot's credential names, in this one resource group (whatever session it names)."""
        return await self._get(name)

    async def group(self, name: str) -> dict[str, Any] | None:
        """Container group `name` as ARM shows it in this resource group (None: not there)."""
        return await self._get(name)

    def launch_env(self, values: Mapping[str, str], image: str | None = None) -> dict[str, str]:
        """A group's environment: the deployment's bot keys, the channel's URL, the image, then `values`."""
        channel = {BOT_CHANNEL_URL: self._channel_url} if self._channel_url else {}
        return {**self._bot_env, **channel, IMAGE_VARIABLE: image or self.bot_image, **values}

    async def _create(self, name: str, env: Mapping[str, str], tags: Mapping[str, str],
                      image: str | None = None, *, turn_away: bool = False) -> HttpResponse:
        body = group_body(self.settings, env, tags, image=image, env_from=self._bot_env)
        # If-None-Match: ARM's create-only condition. Whether ACI honours it is not documented, so
        # the read before it is what keeps a running group from being replaced, and a PUT whose
        # answer was lost is never sent again (a second would replace the group it made).
        return await self._request("PUT", f"/{name}", create=True, json=body, headers={"If-None-Match": "*"},
                                   turn_away=turn_away)

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        if (existing := await self._get(self.group_name(spec.session_id))) is not None:
            return LaunchResult(to_machine(existing), created=False)
        await self.creates.cold_turn()  # ahead of the reserve's refills; refused past its max wait
        return await self._create_session(spec)

    async def run_session(self, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        """The session's group in this cell, its create token already taken (aci/cells.py): read first,
        as a launch is. `turn_away`: a 429 or a quota that made nothing raises `CellTurnedAway` at once."""
        if (existing := await self._get(self.group_name(spec.session_id))) is not None:
            return LaunchResult(to_machine(existing), created=False)
        return await self._create_session(spec, turn_away=turn_away)

    async def _create_session(self, spec: LaunchSpec, *, turn_away: bool = False) -> LaunchResult:
        name = self.group_name(spec.session_id)
        tags = {TAG_SESSION: spec.session_id, TAG_DIGEST: spec.body_digest, TAG_RELEASE: spec.release,
                **({TAG_TRANSPORT: spec.transport} if spec.transport else {})}
        # The session's release's image, else the deployment's own (the SmallWebRTC bot for `webrtc`).
        image = spec.image or self.settings.image_for(session_transport(spec))
        secrets = await self._bot_secrets.values() if self._bot_secrets is not None else {}
        env = {**secrets, **self.launch_env(bot_environment(spec), image)}
        response = await self._create(name, env, tags, image, turn_away=turn_away)
        if response.status_code in (409, 412) and (existing := await self._get(name)) is not None:
            return LaunchResult(to_machine(existing), created=False)
        if turn_away and (turned := turned_away(response)) is not None:
            raise turned
        if response.status_code not in (200, 201):
            raise self._create_failed(response, f"create container group {name}", spec.image, spec.release)
        if operation := response.headers.get("azure-asyncoperation"):
            self._operations[spec.session_id] = operation
        machine = Machine(session_id=spec.session_id, machine_id=name, state=MachineState.STARTING,
                          created_at=time.time(), body_digest=spec.body_digest, transport=spec.transport,
                          release=spec.release)
        return LaunchResult(machine, created=True)

    async def _session_group(self, session_id: str) -> dict[str, Any] | None:
        """The session's group: named for it, or (a claimed reserve group) remembered or found by its tag."""
        raw = await self._get(self._claimed.get(session_id) or self.group_name(session_id))
        return raw if raw is not None else await self._find_claimed(session_id)

    async def _find_claimed(self, session_id: str) -> dict[str, Any] | None:
        """No reserve here (aci/reserve.py finds a claimed group by its session tag)."""
        return None

    async def status(self, session_id: str) -> Machine | None:
        raw = await self._session_group(session_id)
        if raw is not None:
            return to_machine(raw)
        return await self._failed_create(session_id)

    async def _failed_create(self, session_id: str) -> Machine | None:
        """No group: did its create fail after it was accepted? Its async operation says (where this
        replica launched it; another replica sees only that there is no group)."""
        operation = self._operations.get(session_id)
        if operation is None:
            return None
        response = await self._request("GET", operation)
        if response.status_code != 200:
            return None
        answer = response.json()
        if answer.get("status") not in ("Failed", "Canceled"):
            return None
        error = answer.get("error") or {}
        return Machine(session_id=session_id, machine_id=self.group_name(session_id), state=MachineState.FAILED,
                       created_at=time.time(), detail=str(error.get("code") or "create failed"))

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def _delete(self, name: str) -> bool:
        """True when a group was there to delete. A delete spends the create budget's token too (ACI
        counts both), taken without waiting: ending a session is never held back, the next create is."""
        await self.creates.spend()
        response = await self._request("DELETE", f"/{name}")
        if response.status_code in (404, 204):
            return False
        if response.status_code not in (200, 202):
            raise self._failed(response, f"delete container group {name}")
        return True

    async def stop(self, session_id: str) -> bool:
        """Delete, not stop: a stopped group keeps its quota slot, and is never reused. A create that
        failed after it was accepted stays known (`_failed_create`): its session reads `failed`."""
        raw = await self._session_group(session_id)
        if raw is None:
            return False
        await self._delete(str(raw["name"]))
        return True

    async def _pages(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        url = ""
        for _ in range(1000):  # ARM pages by `nextLink`; a thousand pages is far past any quota
            response = await self._request("GET", url)
            if response.status_code != 200:
                raise self._failed(response, "list container groups")
            page = response.json()
            groups += [g for g in page.get("value", []) if isinstance(g, dict)]
            if not (url := page.get("nextLink") or ""):
                break
        return groups

    async def list(self) -> list[Machine]:
        # A session's group is named for it, or (a claimed reserve group, tagged with its claim) for
        # its bot; a deployment whose prefix is this one's `-idle` tags its groups with its own.
        session = re.compile(rf"^{re.escape(self.settings.prefix)}-[0-9a-f]{{24}}$")
        claimed = re.compile(rf"^{re.escape(self.settings.prefix)}-{IDLE_INFIX}[a-z0-9-]+$")
        return [to_machine(g) for g in await self._pages() if self._listed(g, session, claimed)]

    def _listed(self, group: Mapping[str, Any], session: re.Pattern[str], claimed: re.Pattern[str]) -> bool:
        name, tags = str(group.get("name", "")), group.get("tags") or {}
        if TAG_SESSION not in tags or not ours(self.settings, group):
            return False
        return bool(session.match(name) or (claimed.match(name) and TAG_CLAIMED in tags))

    async def aclose(self) -> None:
        await self.lost.aclose()
        await self._client.aclose()
        await self._token.aclose()
        if self._bot_secrets is not None:
            await self._bot_secrets.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: the channel's URL is the deployment's (BOT_CHANNEL_URL), sent with each
        group; the credential travels with each launch."""


def turned_away(response: HttpResponse) -> CellTurnedAway | None:
    """A cell's create refused with nothing made, for another cell to take it: a 429 (the subscription's
    buckets or ACI's create budget) or a quota. Its code alone is said (ARM's words name subscriptions)."""
    code, _ = arm_error(response)
    if response.status_code == 429:
        return CellTurnedAway("aci_throttled", code or "HTTP 429", retry_after=retry_after_of(response.headers))
    if code in CAPACITY_CODES:
        return CellTurnedAway("aci_capacity", code, retry_after=CAPACITY_RETRY_AFTER)
    return None


def arm_token(settings: AciSettings, env: Mapping[str, str]) -> ArmToken:
    """The ARM sign-in of `settings` (a cell's `client_id`: that user-assigned identity's)."""
    if settings.client_id:
        env = {**env, "AZURE_CLIENT_ID": settings.client_id}
    return ArmToken(env, resource=settings.arm_resource, anonymous=settings.auth == "none",
                    client=HttpClient(timeout=10.0, ca_file=settings.ca_bundle or None))


def bot_secrets_from(settings: AciSettings, env: Mapping[str, str]) -> BotSecrets | None:
    if not settings.bot_secrets:
        return None
    client = HttpClient(timeout=settings.timeout, ca_file=settings.ca_bundle or None)
    token = ArmToken(env, resource=KEY_VAULT_RESOURCE, anonymous=settings.auth == "none",
                     client=HttpClient(timeout=10.0, ca_file=settings.ca_bundle or None))
    return BotSecrets(settings.bot_secrets, token=token, client=client, retry_deadline=settings.retry_deadline)


def bot_env_from(env: Mapping[str, str]) -> dict[str, str]:
    """ACI_BOT_ENV_FROM: names of the dispatcher's own variables each group gets as secure values
    (the bot's service keys: ACI has no task-definition secrets to hold them)."""
    names = [n.strip() for n in setting_text(env, "ACI_BOT_ENV_FROM").split(",") if n.strip()]
    missing = [n for n in names if not env.get(n, "").strip()]
    if missing:
        raise MachinesError("aci_rejected", f"ACI_BOT_ENV_FROM names variables that are not set: {', '.join(missing)}")
    return {n: env[n] for n in names}
