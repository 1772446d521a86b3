"""An ECS bot proves which task it runs as: its task role's STS session, named by the task id.

The bot presigns `sts:GetCallerIdentity` with its task role's credentials (bot/identity.py). The
channel checks it is nothing but such a presign for this region's STS (so a bot never makes the
dispatcher call another URL), valid for at most `MAX_PRESIGN_SECONDS` and signed over
`x-voicefleet-channel`; sends it to STS with this deployment's channel URL in that header (a
presign for another audience fails STS's own check); and admits the hello only when STS names a
session of one of `ECS_BOT_TASK_ROLE_ARNS` whose name is a task this dispatcher launched for the
credential's subject (DescribeTasks), in the role's own account (a task's role is its account's:
an admin of one account cannot vouch for a task of another). Each presign is admitted once. The
assumption that ECS names the session by the task id, and how to check an account: docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from yarl import URL

from botchannel.contract import MACHINE_ID_VARIABLE, Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.id_tokens import IdentityRefused
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.base import MachinesError
from dispatcher.machines.ecs.settings import TaskRole
from dispatcher.observability.log_text import shown
from dispatcher.outbound.http_client import proxy_for
from dispatcher.outbound.retry import RETRYABLE_STATUSES, Backoff, Transient, with_retries

STS_VERSION = "2011-06-15"
MAX_PRESIGN_SECONDS = 120  # bots presign for a minute; more would make a captured URL live longer
STS_SKEW_SECONDS = 300  # how far STS lets a presign's X-Amz-Date run ahead of its clock (and ours may lag)
AUDIENCE_HEADER = "x-voicefleet-channel"  # signed by the bot, sent by the dispatcher with its own value
SIGNED_HEADERS = f"host;{AUDIENCE_HEADER}"
# What a SigV4 presign's query holds: its names and values percent-encoded but for `A-Za-z0-9-_.~`.
_QUERY = re.compile(r"[A-Za-z0-9\-_.~%=&]+")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(rf"[0-9]{{1,{len(str(MAX_PRESIGN_SECONDS))}}}")
MAX_ANSWER_BYTES = 16 * 1024  # a GetCallerIdentity answer is ~500 bytes
TIMEOUT_SECONDS = 5.0
BACKOFF = Backoff(attempts=3, base=0.2, cap=1.0, deadline=8.0)
REQUIRED = ("Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
            "X-Amz-SignedHeaders", "X-Amz-Signature")
ALLOWED = frozenset((*REQUIRED, "X-Amz-Security-Token"))
_ASSUMED = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<name>[^/]+)/(?P<session>.+)")


@dataclass(frozen=True)
class Presign:
    """A presigned GetCallerIdentity's query, as signed, and what names it for the one-use record."""

    query: str
    signature: str
    valid_until: float  # epoch seconds: X-Amz-Date + X-Amz-Expires


class EcsTaskIdentity:
    def __init__(self, *, region: str, cluster: str, endpoint: str, roles: tuple[TaskRole, ...],
                 describe: Callable[[list[str], str], Awaitable[list[dict[str, Any]]]], container: str,
                 reserve_marker: str, audience: str | None, clusters: tuple[str, ...] = (),
                 verified: Callable[[BotGrant, str], None] | None = None) -> None:
        """`describe(task ids, account)`: DescribeTasks on the bots' cluster in that account (with its
        own retries; where there are several accounts, in that account's cells alone);
        `reserve_marker`: the `startedBy` of reserve tasks; `audience`: this deployment's channel URL;
        `clusters`: every cluster bots run in, where there are several (ECS_CELLS), `cluster` among them;
        `verified(grant, task ARN)`: told of each task a hello proved (the reserve's cells note its cell)."""
        self.region, self.cluster, self.roles, self.container = region, cluster, roles, container
        self.clusters = clusters or (cluster,)
        self.audience = audience
        self._reserve_marker = reserve_marker
        parts = urlsplit(endpoint)
        self._scheme, self._host = parts.scheme, parts.netloc
        self.endpoint = f"{parts.scheme}://{parts.netloc}/"
        self._describe = describe
        self._verified = verified
        self._session: aiohttp.ClientSession | None = None

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if not self.roles:
            return "no bots' task role to check task identities against (set ECS_BOT_TASK_ROLE_ARNS)"
        if self.audience is None:
            return "no audience to bind task identities to (set BOT_CHANNEL_URL)"
        if hello.identity is None:
            return "no task identity (an ECS bot sends its task role's presigned sts:GetCallerIdentity)"
        try:
            presign = self.checked_presign(hello.identity)
            arn = await self.caller_arn(presign.query)
        except IdentityRefused as exc:
            return f"ECS task identity refused: {exc}"
        assumed = _ASSUMED.fullmatch(arn)
        if assumed is None:
            return f"ECS task identity refused: STS names {shown(arn)}, not an assumed role's session"
        role = TaskRole(assumed["partition"], assumed["account"], assumed["name"])
        if role not in self.roles:
            return (f"ECS task identity refused: STS names role {shown(role.name, 64)!r} of account {role.account},"
                    " not a bots' task role (ECS_BOT_TASK_ROLE_ARNS)")
        return await self._task_refusal(assumed["session"], grant, role.account)

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        """The presign's signature, remembered while STS could still honour it (a query reordered or
        encoded otherwise canonicalises to the same signed request: its signature is what is replayed)."""
        if hello.identity is None:
            return None
        try:
            presign = self.checked_presign(hello.identity)
        except IdentityRefused:
            return None  # refused by `refusal` before any call
        left = min(max(presign.valid_until - time.time(), 0.0), MAX_PRESIGN_SECONDS + STS_SKEW_SECONDS)
        return ProofSeen("sigv4:" + presign.signature, left + STS_SKEW_SECONDS)

    def checked_presign(self, identity: str) -> Presign:
        """The query string of a presigned GetCallerIdentity for this region's STS, exactly as
        signed; anything else is refused before any call."""
        try:
            url = base64.urlsafe_b64decode(identity + "=" * (-len(identity) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            raise IdentityRefused("not a base64url-encoded URL") from None
        if not url.isprintable():
            raise IdentityRefused("the URL holds control characters")
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._scheme, self._host) or parts.path != "/" or parts.fragment:
            aimed = shown(f"{parts.scheme}://{parts.netloc}{parts.path}")
            raise IdentityRefused(f"aimed at {aimed}, not {self.endpoint}")
        if _QUERY.fullmatch(parts.query) is None:  # it goes out byte for byte: nothing a presign never holds
            raise IdentityRefused("its query holds characters a presign percent-encodes")
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise IdentityRefused("its query string is malformed") from None
        params = dict(pairs)
        if len(params) != len(pairs) or not set(REQUIRED) <= params.keys() <= ALLOWED:
            raise IdentityRefused("its query is not a presigned GetCallerIdentity's (a parameter missing,"
                                  " repeated or unexpected)")
        if (params["Action"], params["Version"]) != ("GetCallerIdentity", STS_VERSION):
            raise IdentityRefused(f"Action={shown(params['Action'])}, not GetCallerIdentity ({STS_VERSION})")
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or params["X-Amz-SignedHeaders"] != SIGNED_HEADERS:
            raise IdentityRefused(f"not signed with SigV4 over {SIGNED_HEADERS} (this deployment's audience)")
        if _SIGNATURE.fullmatch(params["X-Amz-Signature"]) is None:
            raise IdentityRefused("X-Amz-Signature is not 64 hex digits")
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[2:] != [self.region, "sts", "aws4_request"]:
            raise IdentityRefused(f"signed for {shown('/'.join(scope[2:4]))}, not {self.region}/sts")
        expires = params["X-Amz-Expires"]  # ASCII digits, as few as the cap needs: `int()` raises past 4300
        if _EXPIRES.fullmatch(expires) is None or not 0 < int(expires) <= MAX_PRESIGN_SECONDS:
            raise IdentityRefused(f"X-Amz-Expires is not 1 to {MAX_PRESIGN_SECONDS} seconds")
        try:
            signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise IdentityRefused("X-Amz-Date is not yyyymmddThhmmssZ") from None
        return Presign(parts.query, params["X-Amz-Signature"], signed_at + int(expires))

    async def caller_arn(self, query: str) -> str:
        """STS's answer to the presigned request: the caller's ARN, or `IdentityRefused` saying why not."""
        try:
            status, body = await with_retries(lambda: self._get(query), BACKOFF)
        except Transient as exc:
            raise IdentityRefused(f"STS did not answer ({exc})") from None
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - STS's own answer, over our URL, bounded
        except ElementTree.ParseError:
            raise IdentityRefused(f"STS answered HTTP {status} with no XML") from None
        texts = {element.tag.rsplit("}", 1)[-1]: (element.text or "").strip() for element in root.iter()}
        if status != 200:
            raise IdentityRefused(f"STS refused the request: HTTP {status} {shown(texts.get('Code', ''))}"
                                  f" {shown(texts.get('Message', ''))}")
        if not texts.get("Arn"):
            raise IdentityRefused("STS's answer names no Arn")
        return texts["Arn"]

    async def _get(self, query: str) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                                                  trust_env=False)
        url = URL(f"{self.endpoint}?{query}", encoded=True)  # sent byte for byte as the bot signed it
        headers = {AUDIENCE_HEADER: self.audience or ""}  # our own audience: a presign for another fails
        try:
            async with self._session.get(url, allow_redirects=False, headers=headers,
                                         proxy=proxy_for(self.endpoint)) as response:
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Transient(type(exc).__name__) from None
        if status in RETRYABLE_STATUSES:
            raise Transient(f"HTTP {status}", status=status)
        if len(body) > MAX_ANSWER_BYTES:
            raise IdentityRefused(f"STS's answer exceeds {MAX_ANSWER_BYTES} bytes")
        return status, body

    async def _task_refusal(self, session_name: str, grant: BotGrant, account: str) -> str | None:
        """None when `session_name` is the task the dispatcher launched for `grant`'s subject, in
        `account` (the task role's)."""
        wanted = f"{'reserve bot' if grant.kind == 'idle' else 'session'} {grant.subject}"
        try:  # DescribeTasks matches ids loosely in some implementations: only an exact id counts
            tasks = [t for t in await self._describe([session_name], account)
                     if str(t.get("taskArn", "")).rsplit("/", 1)[-1] == session_name and self._ours(t)
                     and str(t.get("taskArn", "")).split(":")[4:5] == [account]]
        except MachinesError as exc:
            return f"ECS task identity not checked: DescribeTasks failed ({exc})"
        if not tasks:
            # Under 200 characters, the log's limit: the session STS named is what an operator needs.
            cluster = " or ".join(c.rsplit("/", 1)[-1] for c in self.clusters)
            return (f"ECS task identity refused: STS names session {shown(session_name, 64)!r}, which is no task id"
                    f" in {cluster} of account {account} (want {wanted}'s task)")
        task = tasks[0]
        started_by = str(task.get("startedBy", ""))
        if grant.kind == "idle":
            launched_for = (f"reserve bot {self._machine_id(task)}" if started_by == self._reserve_marker
                            else f"session {started_by}")
        else:
            launched_for = f"session {started_by}" if started_by != self._reserve_marker else "the reserve"
        if launched_for != wanted:
            return (f"ECS task identity refused: task {session_name} was launched for {shown(launched_for)},"
                    f" not {wanted}")
        if self._verified is not None:
            self._verified(grant, str(task["taskArn"]))
        return None

    def _ours(self, task: Mapping[str, Any]) -> bool:
        cluster = str(task.get("clusterArn", ""))
        return any(ours in (cluster, cluster.rsplit("/", 1)[-1]) for ours in self.clusters)

    def _machine_id(self, task: Mapping[str, Any]) -> str:
        """The bot id the reserve's RunTask gave the task (its environment override)."""
        for container in (task.get("overrides") or {}).get("containerOverrides") or []:
            if container.get("name") == self.container:
                for variable in container.get("environment") or []:
                    if variable.get("name") == MACHINE_ID_VARIABLE:
                        return str(variable.get("value", ""))
        return "(none)"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
