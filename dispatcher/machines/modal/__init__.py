"""`MACHINES=modal`: a Modal Sandbox per session (the `modal` dependency group).
"""

from dispatcher.machines.cold_start import ColdStart

# Modal: container start "~1 s" before the bot's imports (modal.com/docs/guide/cold-start), then the
# bot's own imports and VAD load (~1–2 s for a Pipecat bot): median 2.5 s, σ 0.5 (p95 ≈ 5.7 s).
# A model, not a measurement; the dispatcher replaces it with its own measured starts.
COLD_START = ColdStart(2.5, 0.5)
