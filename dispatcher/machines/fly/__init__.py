"""`MACHINES=fly`: a Fly Machine per session.
"""

from dispatcher.machines.cold_start import ColdStart

# Fly Machines: median 3 s, σ 0.6 (p95 ≈ 8 s): "1–10 s", low double digits with an image fetch
# (docs/reference/field_2026.md).
COLD_START = ColdStart(3.0, 0.6)
