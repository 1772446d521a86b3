"""A Modal bot proves which Sandbox it runs in: the Sandbox's OIDC identity token.

Each Sandbox is created with `include_oidc_identity_token=True`, so Modal puts a JWT it signs in
the Sandbox's environment (`MODAL_IDENTITY_TOKEN`, or a file `MODAL_IDENTITY_TOKEN_FILE` names that
Modal rewrites as the token renews); the bot sends it in its hello (bot/identity.py, `BOT_IDENTITY=modal`).
Modal documents the token (modal.com/docs/guide/oidc-integration): issuer `https://oidc.modal.com`,
audience `oidc.modal.com` (fixed: no audience of the caller's choosing), RS256 keys published through
the discovery document's `jwks_uri`, and claims naming the workspace, environment, App and the
container (`container_id`, also the last part of `sub`). The hello is admitted only when the token is
Modal's, unexpired, names this deployment's App, and names the container (task) of the Sandbox the
dispatcher created for the credential's session or reserve bot, which must still be running. Someone
who read the credential elsewhere (a log) holds no such token.

What it does not give: a token per dial. The audience is Modal's, and a Sandbox has one token for
as long as it lives, which its bot re-sends on every re-dial; so it is not admitted once only (the
`OneUse` record), and whoever captured a hello's token *and* its credential could dial as that one
Sandbox while it runs. The token leaves the Sandbox only in its bot's hellos (over TLS), unless the
team's own code sends it elsewhere (to AWS or GCP, which is what Modal made it for) (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.id_tokens import IdentityRefused, JsonWebKeys, mismatch, verified_claims
from dispatcher.channel.identity import ProofSeen
from dispatcher.outbound.http_client import HttpError

ISSUER = "https://oidc.modal.com"
AUDIENCE = "oidc.modal.com"


class DiscoveredKeys(JsonWebKeys):
    """Modal's keys, at the URL its OIDC discovery document names (read once, on the first fetch)."""

    def __init__(self, discovery_url: str) -> None:
        super().__init__("")
        self.discovery_url = discovery_url

    async def _fetch(self) -> None:
        if not self.url:
            try:
                response = await self._client.request("GET", self.discovery_url)
                jwks_uri = response.json().get("jwks_uri") if response.status_code == 200 else None
            except (HttpError, ValueError, AttributeError):
                jwks_uri = None
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                self._asked_at = self._clock()  # asked again no sooner than the refetch bound
                return
            self.url = jwks_uri
        await super()._fetch()


class ModalSandboxIdentity:
    def __init__(self, *, discovery_url: str, app_id: Callable[[], Awaitable[str]],
                 running_task: Callable[[str, str], Awaitable[str | None]]) -> None:
        """`app_id()`: the deployment's App; `running_task(kind, subject)`: the task id of the Sandbox
        created for the grant, None when it is not running."""
        self.keys = DiscoveredKeys(discovery_url)
        self._app_id, self._running_task = app_id, running_task

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if hello.identity is None:
            return "no identity token (a Modal bot sends its Sandbox's MODAL_IDENTITY_TOKEN)"
        try:
            claims = await verified_claims(hello.identity, self.keys, issuers=(ISSUER,), audience=AUDIENCE,
                                           max_seconds=None)
        except IdentityRefused as exc:
            return f"identity token refused: {exc}"
        if (app_refusal := mismatch("identity token", claims, {"app_id": await self._app_id()})) is not None:
            return app_refusal
        task = await self._running_task(grant.kind, grant.subject)
        if task is None:
            return f"no running Sandbox for {grant.kind} {grant.subject}"
        if container_id(claims) != task:
            return f"identity token names another container than {grant.kind} {grant.subject}'s Sandbox"
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None  # the Sandbox's one token for its whole life: every re-dial sends it again

    async def aclose(self) -> None:
        await self.keys.aclose()


def container_id(claims: Mapping[str, Any]) -> str | None:
    """The container the token names: its `container_id` claim, or the value after `container_id:`
    in `sub` (`modal:workspace_id:…:container_id:ta-…`); when both are there they must agree."""
    sub = claims.get("sub")
    parts = sub.split(":") if isinstance(sub, str) else []
    in_sub = parts[parts.index("container_id") + 1] if "container_id" in parts[:-1] else None
    claim = claims.get("container_id")
    if isinstance(claim, str) and in_sub is not None and claim != in_sub:
        return None
    return claim if isinstance(claim, str) else in_sub
