"""A Cloud Run bot's proof: its service account's identity token, and its execution still running.

The bot asks its task's metadata server for
`instance/service-accounts/default/identity?audience=<BOT_CHANNEL_URL>#<nonce>` (bot/identity.py,
`BOT_IDENTITY=cloudrun`) and sends the token in its hello. Google signs it (RS256, keys at
`https://www.googleapis.com/oauth2/v3/certs`, `CLOUDRUN_IDENTITY_CERTS_URL` overrides). Unlike a
Compute Engine VM's, a Cloud Run token names no execution or instance: only the service account
(`sub`, its unique id). So the check is in three parts. The token must be Google's, unexpired, for
this channel, and its `sub` the bots' own service account (`CLOUDRUN_BOT_SERVICE_ACCOUNT_ID`),
which the stack gives this job alone and lets no principal impersonate: only a task of the job can
get one. The hello must name the execution the dispatcher ran for the grant (machine id: the
task's `CLOUD_RUN_EXECUTION`; a reserve bot's, its bot id), still running (the Admin API). And the token's audience
must carry that execution's nonce (`#<nonce>.<dial's own>`), which the dispatcher gave it alone in
its run's env: a bot of another execution holding a stolen credential has its own nonce, not this
one's, and is refused. What remains: whoever may read an execution's env (`run.executions.get`)
reads its nonce with its credential, and from a task of the job could pair them (docs/security.md).
With CLOUDRUN_CELLS each project has its own bots' account: the token must be that of the project
the session's execution was read in (its cell's), never another project's bots'. The project is the
one the execution was found in, never parsed from its name: Google documents `Execution.name` as
output only, with no format, and may name the project by its number. A grant admitted is told to
`proved`, with the cell its execution was read in (cloudrun/cell_reserve.py fixes a reserve bot's cell).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botchannel.contract import EXECUTION_NONCE_VARIABLE, Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.id_tokens import IdentityRefused, JsonWebKeys, token_seen, verified_claims
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.cloudrun.executions import execution_env
from dispatcher.machines.gce.identity import DEFAULT_CERTS_URL, GOOGLE_ISSUERS

__all__ = ["DEFAULT_CERTS_URL", "CloudRunIdentity", "RunningExecution"]


@dataclass(frozen=True)
class RunningExecution:
    """The execution run for a grant, still running, and the bots' service account of the project
    (the cell) it was read in: the one account its bot's token may be."""

    raw: Mapping[str, Any]
    bots_account: str | None
    cell: str | None = None  # the cell it was read in (CLOUDRUN_CELLS), None with one project


# A grant's kind and subject, and the session its hello names (a claimed reserve bot's re-dial) → its execution
Running = Callable[[str, str, str | None], Awaitable[RunningExecution | None]]
Proved = Callable[[BotGrant, str | None, RunningExecution], None]  # a grant admitted, its hello's session, where


class CloudRunIdentity:
    def __init__(self, *, audience: str | None, accounts: Sequence[str | None], certs_url: str,
                 running: Running, proved: Proved | None = None) -> None:
        """`accounts`: every project's bots' service account (one, or each cell's); `running(kind,
        subject, session)`: the execution run for the grant, if it still runs, with its own project's
        account; `proved`: told of each grant admitted, with the execution that admitted it."""
        self.audience, self.accounts = audience, tuple(accounts)
        self.keys = JsonWebKeys(certs_url)
        self._running, self._proved = running, proved

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if self.audience is None:
            return "no audience to check identity tokens against (set BOT_CHANNEL_URL)"
        if not self.accounts or None in self.accounts:
            return "no bot service account to check identity tokens against (set CLOUDRUN_BOT_SERVICE_ACCOUNT_ID)"
        if hello.identity is None:
            return "no identity token (a Cloud Run bot sends its service account's)"
        try:
            claims = await verified_claims(hello.identity, self.keys, issuers=GOOGLE_ISSUERS, audience=self.audience)
        except IdentityRefused as exc:
            return f"identity token refused: {exc}"
        if claims.get("sub") not in self.accounts:
            return "identity token is not the bots' service account's"
        found = await self._running(grant.kind, grant.subject, hello.session_id)
        whose = "reserve bot" if grant.kind == "idle" else "session"
        if found is None:
            return f"no running execution for {whose} {grant.subject}"
        execution = found.raw
        full = str(execution.get("name", "")).strip("/")
        name = full.rsplit("/", 1)[-1]
        if claims.get("sub") != found.bots_account:  # another project's bot: its own cell's account only
            return f"identity token is not the service account of the bots of {full.partition('/jobs/')[0]}"
        # A reserve bot's hello names its bot id (its run's BOT_MACHINE_ID), which found its execution.
        named = grant.subject if grant.kind == "idle" else name
        if hello.machine_id != named:
            return f"the hello names {hello.machine_id!r}, not {named}, which runs {whose} {grant.subject}"
        nonce = execution_env(execution).get(EXECUTION_NONCE_VARIABLE, "")
        carried = str(claims.get("aud", "")).partition("#")[2].partition(".")[0]
        if not nonce or not hmac.compare_digest(carried.encode(), nonce.encode()):
            return f"identity token does not carry execution {name}'s nonce"
        if self._proved is not None:
            self._proved(grant, hello.session_id, found)
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return token_seen(hello.identity)

    async def aclose(self) -> None:
        await self.keys.aclose()
