"""The start-up checks of the cluster: bots' identity tokens are not API credentials, and the
`agent-sandbox` mode's API versions are served.

Each bot's projected token is of BOT_IDENTITY_AUDIENCE and reaches the dispatcher in its hello: were
that audience one of the API server's own, every hello would hand the dispatcher a credential the
API server accepts. The settings refuse the usual names (k8s/settings.py); here a TokenReview of the
dispatcher's own token, asking no audience, reports the cluster's (its `--api-audiences`), and an
audience among them stops the dispatcher. A review that fails says nothing: the identity check
reports that itself at the first hello.

agent-sandbox's CRDs serve `v1beta1` since v0.5 (`v1alpha1` deprecated, removed in v1.0), and
the mode sends `v1beta1` bodies only; GKE's managed add-on served only `v1alpha1` in 2026
(kubernetes-sigs/agent-sandbox#1307). So at start the dispatcher reads API discovery for both groups
(`GET /apis/<group>`, an `APIGroup` listing its served versions) and refuses a missing group or an
older version in one line naming the fix, instead of failing every start with 404s.

The pool must be `spec.updateStrategy.type: Recreate`: the controller's default (`OnReplenish`, also what
it makes of an unknown type: sandboxwarmpool_controller.go `resolveUpdateStrategy`) keeps warm Sandboxes of
an old template until each is claimed, so a new image would serve sessions from stale pods and be refused
(k8s/pool_bots.py checks a pool bot's image). A pool that is not there is `settle`'s warning, not a stop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.settings import AGENT_SANDBOX, K8sSettings

log = logging.getLogger("dispatcher.machines.k8s.served")

EXTENSIONS_GROUP, CORE_GROUP = "extensions.agents.x-k8s.io", "agents.x-k8s.io"
VERSION = "v1beta1"
RECREATE = "Recreate"
INSTALL = ("install kubernetes-sigs/agent-sandbox v0.5 or later with its extensions (the release's "
           "sandbox-with-extensions.yaml), or set K8S_MODE=pods")


def served_versions(discovery: Mapping[str, object]) -> list[str]:
    versions = discovery.get("versions")
    return [str(v.get("version")) for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []


async def served_problem(api: KubeApi) -> str | None:
    """Why the cluster cannot serve this mode (one line naming the fix), or None."""
    for group in (EXTENSIONS_GROUP, CORE_GROUP):
        try:
            response = await api.call("GET", f"/apis/{group}")
        except MachinesError as exc:
            return f"K8S_MODE=agent-sandbox: the API server did not answer discovery for {group} ({exc.reason})"
        if response.status_code == 404:
            return f"K8S_MODE=agent-sandbox: the cluster does not serve {group}: {INSTALL}"
        if response.status_code != 200:
            refused = api.failed(response, f"read API discovery for {group}", "get /apis")
            return f"K8S_MODE=agent-sandbox: {refused.message}"
        versions = served_versions(response.json() or {})
        if VERSION not in versions:
            return (f"K8S_MODE=agent-sandbox: the cluster serves {group} {', '.join(versions) or 'in no version'}, "
                    f"not {VERSION}: {INSTALL} (a managed add-on serving only v1alpha1 must be upgraded)")
    return None


async def pool_problem(api: KubeApi, namespace: str, pool: str) -> str | None:
    """Why K8S_WARM_POOL cannot serve (its update strategy is not Recreate), or None."""
    path = f"/apis/{EXTENSIONS_GROUP}/{VERSION}/namespaces/{namespace}/sandboxwarmpools/{pool}"
    try:
        response = await api.call("GET", path)
    except MachinesError as exc:
        return f"K8S_WARM_POOL={pool}: the API server did not answer for the pool ({exc.reason})"
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        refused = api.failed(response, f"read sandboxwarmpool {pool}", "get sandboxwarmpools")
        return f"K8S_WARM_POOL={pool}: {refused.message}"
    strategy = (((response.json() or {}).get("spec") or {}).get("updateStrategy") or {}).get("type")
    if strategy == RECREATE:
        return None
    return (f"K8S_WARM_POOL={pool}: the SandboxWarmPool's spec.updateStrategy.type is "
            f"{strategy or 'unset (OnReplenish)'}, not {RECREATE}: its warm pods would outlive a new image; "
            f"set `updateStrategy: {{type: {RECREATE}}}` on the pool")


async def audience_problem(api: KubeApi, audience: str) -> str | None:
    """Why BOT_IDENTITY_AUDIENCE cannot be the bots' (it is the API server's own), or None."""
    try:
        audiences = await api.own_audiences()
    except MachinesError:
        return None
    if not audiences:  # a token naming only some audiences, or an OIDC/webhook one: the review lists none
        log.warning("the API server did not say which audiences are its own (a review of the dispatcher's token "
                    "named none), so BOT_IDENTITY_AUDIENCE=%r is not checked against them: it must not be one",
                    audience[:80])
    if audience not in audiences:
        return None
    return (f"BOT_IDENTITY_AUDIENCE={audience[:80]!r} is one of the API server's own audiences "
            f"({', '.join(audiences)[:200]}): each bot's identity token would be an API credential handed to the "
            "dispatcher; use the channel's URL (the default) or any name of voicefleet's own")


async def cluster_problems(env: Mapping[str, str]) -> list[str]:
    """What the cluster refuses or lacks for the configuration, read once at start."""
    settings = K8sSettings.from_env(env)
    problems: list[str | None] = []
    # Over K8S_CELLS every cluster reviews its own bots' tokens: none may take their audience for its own.
    for cell in settings.cells or (None,):
        api = KubeApi(settings if cell is None else settings.for_cell(cell))
        try:
            problem = await audience_problem(api, settings.token_audience)
            problems.append(problem if cell is None or problem is None else f"K8S_CELLS cell {cell.name}: {problem}")
            if settings.mode == AGENT_SANDBOX:
                problems.append(await served_problem(api) or await pool_problem(api, settings.namespace,
                                                                                 settings.warm_pool))
        finally:
            await api.aclose()
    return [p for p in problems if p]
