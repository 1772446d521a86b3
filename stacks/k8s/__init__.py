"""voicefleet on a Kubernetes cluster its owner already runs (`cloud: k8s`, the dispatcher's `MACHINES=k8s`).

One component per file: `namespaces` (the dispatcher's and the bots', the bots' quota), `access` (the
ServiceAccounts and the least RBAC the pods provider needs), `secrets` (the dispatcher's Secret),
`dispatcher` (Deployment, PodDisruptionBudget, Service, Ingress), `network_policies`; `stack` composes
them behind one explicit provider built from the secret kubeconfig (docs/kubernetes.md, "A stack for
your cluster").
"""
