"""`MACHINES=cloudrun`: a Cloud Run job execution per session, with per-execution overrides.
"""

from dispatcher.machines.cold_start import ColdStart

# Cloud Run jobs: Google publishes no start latency for a job execution (machines_apis.md §3.4),
# only "a few 100ms" of infrastructure for *services*. Modelled conservatively, as a container
# platform that schedules a task and pulls the image (ECS Fargate's reported 45-90 s is the
# slow end): median 20 s, σ 0.5 (p95 ≈ 45 s). Measure yours: the dispatcher replaces it with
# its own starts (dispatcher/reserve/start_times.py).
COLD_START = ColdStart(20.0, 0.5)

# An execution's timeout is the session's limit plus this (boot, goodbye): the dispatcher's
# default (CLOUDRUN_GRACE_SECONDS) and the stack's job both use it.
GRACE_SECONDS = 120
