"""A Fly bot proves which Machine it runs on: the Machine's OIDC token.

The bot asks its Machine's API socket for a token (`POST /v1/tokens/oidc` on `/.fly/api` with
`{"aud": <BOT_CHANNEL_URL>}`, bot/identity.py) and sends it in its hello. Fly signs it for that
Machine only (the socket attaches the Machine's own credential, which the bot never sees); its
issuer is the organisation's, `https://oidc.fly.io/<org>`, and its claims name the Machine:
`app_name`, `machine_id`, `machine_name` (https://fly.io/docs/reference/openid-connect/). The
channel admits the hello only when the token is the issuer's (RS256, keys from
`<issuer>/.well-known/jwks`, the `jwks_uri` of its OpenID discovery document; `FLY_OIDC_JWKS_URL`
overrides), unexpired, for this deployment's channel (`aud`), of one of the deployment's apps
(`FLY_APPS`; where this replica created the machine, its own app), and names the machine
the dispatcher created for the credential: `vf-<session>` for a cold bot, `vf-idle-<bot id>` for a
reserve bot, and, where this replica created it, that machine's id. A machine name is unique among
an app's live machines (a create with a taken name is refused), and a session id is never reused.
"""

from __future__ import annotations

from collections.abc import Callable

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.id_tokens import IdentityRefused, JsonWebKeys, mismatch, token_seen, verified_claims
from dispatcher.channel.identity import ProofSeen
from dispatcher.observability.log_text import shown

DEFAULT_ISSUER = "https://oidc.fly.io"


class FlyMachineIdentity:
    def __init__(self, *, issuer: str | None, apps: tuple[str, ...], audience: str | None, jwks_url: str | None,
                 names: Callable[[BotGrant], str], known_id: Callable[[BotGrant], str | None],
                 known_app: Callable[[BotGrant], str | None],
                 verified: Callable[[BotGrant, str, str], None]) -> None:
        """`names(grant)`: the machine name created for the grant's subject; `known_id(grant)` and
        `known_app(grant)`: its Fly machine id and app where this replica created it (None: another
        replica did); `verified(grant, machine id, app)`: told the machine a hello proved it runs on."""
        self.issuer, self.apps, self.audience = issuer, apps, audience
        self.keys = JsonWebKeys(jwks_url or f"{issuer}/.well-known/jwks")
        self._names, self._known_id, self._known_app = names, known_id, known_app
        self._verified = verified

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if self.issuer is None:
            return "no issuer to check Machine OIDC tokens against (set FLY_ORG)"
        if self.audience is None:
            return "no audience to check Machine OIDC tokens against (set BOT_CHANNEL_URL)"
        if hello.identity is None:
            return "no Machine OIDC token (a Fly bot sends its Machine's)"
        try:
            claims = await verified_claims(hello.identity, self.keys, issuers=(self.issuer,), audience=self.audience)
        except IdentityRefused as exc:
            return f"Machine OIDC token refused: {exc}"
        if claims.get("app_name") not in self.apps:
            named = shown(claims.get("app_name"))
            return f"Machine OIDC token's app_name is {named}, not one of {', '.join(self.apps)}"
        expected = {"machine_name": self._names(grant)}
        if (machine_id := self._known_id(grant)) is not None:
            expected["machine_id"] = machine_id
        if (app := self._known_app(grant)) is not None:
            expected["app_name"] = app
        if (refused := mismatch("Machine OIDC token", claims, expected)) is not None:
            return refused
        # Fly signed these for the machine itself: a replica that did not create it now knows its id
        # and app without listing the deployment's apps (1 list/s each) to find it.
        self._verified(grant, str(claims["machine_id"]), str(claims["app_name"]))
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return token_seen(hello.identity)

    async def aclose(self) -> None:
        await self.keys.aclose()
