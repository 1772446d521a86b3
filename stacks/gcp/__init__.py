"""voicefleet on GCP: one Pulumi component or helper per file, composed by `stack.GcpStack`.

Components (each a `voicefleet:gcp:*` resource or a helper that registers under its caller):
`apis` (the project's services), `registry` (Artifact Registry), `network` (egress-only VPC),
`secrets` (Secret Manager, read by reference), `bot_template` (the instance template every bot VM
is created from, with `startup`, the script it runs), `relay` (coturn on a VM), `store`
(Memorystore for several instances) and `dispatcher` (the Cloud Run service). `naming` derives
their names from the stack's. Components import config and the shared contracts, never `stack`.
"""
