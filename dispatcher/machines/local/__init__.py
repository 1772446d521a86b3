"""`MACHINES=local`: a bot subprocess per session on this host (the embedded default).
"""

from dispatcher.machines.cold_start import ColdStart

# The measured ~1.4 s of README "Measured" (imports done, channel dialled); its spread assumed.
COLD_START = ColdStart(1.5, 0.4)
