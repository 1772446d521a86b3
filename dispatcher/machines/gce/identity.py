"""A Compute Engine bot proves which VM it runs on: the instance identity token.

The bot asks its VM's metadata server for
`instance/service-accounts/default/identity?audience=<BOT_CHANNEL_URL>&format=full` (bot/identity.py)
and sends the token in its hello. Google signs it (RS256, keys published at
`https://www.googleapis.com/oauth2/v3/certs`, `GCE_IDENTITY_CERTS_URL` overrides), a VM can get
only its own, and its `google.compute_engine` claims name the VM: `project_id`, `zone`,
`instance_name` (https://cloud.google.com/compute/docs/instances/verifying-instance-identity).
The channel admits the hello only when the token is Google's, unexpired, for this deployment's
channel (`aud`), and names the VM the dispatcher inserted for the credential: `<prefix>-<session>`
for a cold bot, `<prefix>-idle-<bot id>` for a reserve bot (whose name it keeps once claimed).
Instance names are unique in a zone while the VM exists, and a session id is never reused, so the
name binds the token to that launch; someone who read the VM's metadata from elsewhere holds the
credential but no such token. With GCE_CELLS the VM's project and zone are those of the cell the
session's VM was found in (`locate`, gce/cells.py), never read from its name or the token (a claimed
reserve bot that dials again names its session: its VM is that session's, found through the cell the
store records for it, at any replica); a token that names it proves the VM there (`proved`: an idle
reserve bot's cell is then fixed, gce/cell_reserve.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.id_tokens import IdentityRefused, JsonWebKeys, mismatch, token_seen, verified_claims
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.gce.labels import IDLE_INFIX
from dispatcher.machines.gce.settings import (
    DEFAULT_CERTS_URL as DEFAULT_CERTS_URL,  # Cloud Run's identity names it here
)

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")  # as google-auth's id_token accepts


# A grant's VM, and the session its hello names (a claimed reserve bot's re-dial) → its (project, zone), or None
Locate = Callable[[BotGrant, str | None], Awaitable[tuple[str, str] | None]]
# A grant's VM, its hello naming that session (or none), proved in that (project, zone)
Proved = Callable[[BotGrant, str | None, tuple[str, str]], None]


class GceInstanceIdentity:
    def __init__(self, *, project: str, zone: str, prefix: str, audience: str | None, certs_url: str,
                 locate: Locate | None = None, proved: Proved | None = None) -> None:
        """`locate`: where VMs run in several projects (GCE_CELLS), the project and zone of the cell the
        grant's VM was found in (None: none found); the token must name that one, not any cell's. A
        reserve bot's hello that names a session (it dials again once claimed) is located through that
        session's VM. `proved`: told of each grant whose token named the located project and zone."""
        self.project, self.zone, self.prefix = project, zone, prefix
        self.audience = audience
        self.keys = JsonWebKeys(certs_url)
        self._locate = locate
        self._proved = proved

    def instance_for(self, grant: BotGrant) -> str:
        """The VM the dispatcher inserted for the credential's bot id or session."""
        infix = IDLE_INFIX if grant.kind == "idle" else ""
        return f"{self.prefix}-{infix}{grant.subject}"

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if self.audience is None:
            return "no audience to check instance identity tokens against (set BOT_CHANNEL_URL)"
        if hello.identity is None:
            return "no instance identity token (a Compute Engine bot sends its VM's)"
        try:
            claims = await verified_claims(hello.identity, self.keys, issuers=GOOGLE_ISSUERS, audience=self.audience)
        except IdentityRefused as exc:
            return f"instance identity token refused: {exc}"
        where = (self.project, self.zone) if self._locate is None else await self._locate(grant, hello.session_id)
        if where is None:
            whose = "reserve bot" if grant.kind == "idle" else "session"
            return f"no instance of {whose} {grant.subject} in any cell"
        expected = {"project_id": where[0], "zone": where[1], "instance_name": self.instance_for(grant)}
        if (refused := mismatch("instance identity token", _compute_engine(claims), expected)) is None \
                and self._proved is not None:
            self._proved(grant, hello.session_id, where)
        return refused

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return token_seen(hello.identity)

    async def aclose(self) -> None:
        await self.keys.aclose()


def _compute_engine(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    """`google.compute_engine` (present in `format=full` tokens only; a standard one names no VM)."""
    google = claims.get("google")
    instance = google.get("compute_engine") if isinstance(google, Mapping) else None
    return instance if isinstance(instance, Mapping) else {}
