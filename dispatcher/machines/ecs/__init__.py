"""`MACHINES=ecs`: an ECS task on Fargate per session, and the AWS plumbing it needs (SigV4 signing,
the credential chain, the JSON 1.1 API).
"""

from dispatcher.machines.cold_start import ColdStart

# Fargate: median 40 s, σ 0.35 (p95 ≈ 71 s): AWS re:Post "30–45 s normal", 60–90 s reports
# (docs/reference/field_2026.md).
COLD_START = ColdStart(40.0, 0.35)
