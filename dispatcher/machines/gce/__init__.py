"""`MACHINES=gce`: a Compute Engine VM per session from a Pulumi-managed instance template.
"""

from dispatcher.machines.cold_start import ColdStart

# Compute Engine: median 30 s, σ 0.3 (p95 ≈ 49 s): ~10 s to RUNNING, then the image pull and the
# boot (docs/reference/field_2026.md).
COLD_START = ColdStart(30.0, 0.3)

# A VM's maxRunDuration is the session's limit plus this (boot, goodbye, shutdown): the
# dispatcher's default (GCE_GRACE_SECONDS) and the stack's bot template both use it.
GRACE_SECONDS = 300
