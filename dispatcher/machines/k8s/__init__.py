"""`MACHINES=k8s`: one bare Pod per session on any conformant Kubernetes cluster (the `pods` mode), or
one SandboxClaim per session on kubernetes-sigs/agent-sandbox (the `agent-sandbox` mode), through the
API server's REST API: settings, the API client, a Pod's and a claim's body and state, the providers,
the pods mode's warm reserve (idle pods claimed by one JSON Patch), the served-version check and the
bots' identity check.
"""

from dispatcher.machines.cold_start import ColdStart

# Modelled until measured (docs/kubernetes.md): a Pod on a node that has the image cached is
# scheduled and running in a few seconds; the bot's imports and hello take most of the rest. An
# uncached image pull is the long tail. Median 8 s, σ 0.5 (p95 ≈ 18 s).
COLD_START = ColdStart(8.0, 0.5)
