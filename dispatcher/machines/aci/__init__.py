"""`MACHINES=aci`: one Azure Container Instances container group per session, through ARM's REST API.
"""

from dispatcher.machines.cold_start import ColdStart

# Azure publishes no create-to-running latency for container groups (learn.microsoft.com's ACI
# pages say only that image size and caching matter; machines_apis.md §5.5 found no number). Modelled
# conservatively until measured: median 45 s, σ 0.35 (p95 ≈ 80 s): ARM's accepted create, the
# scheduling, the image pull from the registry (uncached for a new digest), the bot's own start.
COLD_START = ColdStart(45.0, 0.35)
