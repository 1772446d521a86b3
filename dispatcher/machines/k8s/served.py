"""The `agent-sandbox` mode's start-up check: the cluster serves the API versions it speaks.

agent-sandbox's CRDs serve `v1beta1` since v0.5 (`v1alpha1` deprecated, removed in v1.0), and
the mode sends `v1beta1` bodies only; GKE's managed add-on served only `v1alpha1` in 2026
(kubernetes-sigs/agent-sandbox#1307). So at start the dispatcher reads API discovery for both groups
(`GET /apis/<group>`, an `APIGroup` listing its served versions) and refuses a missing group or an
older version in one line naming the fix, instead of failing every start with 404s.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.settings import AGENT_SANDBOX, K8sSettings

EXTENSIONS_GROUP, CORE_GROUP = "extensions.agents.x-k8s.io", "agents.x-k8s.io"
VERSION = "v1beta1"
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


async def cluster_problems(env: Mapping[str, str]) -> list[str]:
    """What the cluster lacks for the configured mode, read once at start (nothing for `pods`)."""
    settings = K8sSettings.from_env(env)
    if settings.mode != AGENT_SANDBOX:
        return []
    api = KubeApi(settings)
    try:
        problem = await served_problem(api)
    finally:
        await api.aclose()
    return [problem] if problem else []
