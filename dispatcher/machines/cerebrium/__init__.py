"""`MACHINES=cerebrium`: one async call of a deployed Cerebrium app's function per session.
"""

from dispatcher.machines.cold_start import ColdStart

# Cerebrium: "new instances start within 3 seconds" once scaling triggers
# (https://docs.cerebrium.ai/cerebrium/scaling/scaling-apps), plus the bot's own init (its imports
# and the channel's hello, ~5 s for a Pipecat bot): modelled at a 8 s median with a wide spread,
# since nothing here was measured on Cerebrium.
COLD_START = ColdStart(8.0, 0.4)
