"""A warning for a trunk that places calls in a deployment of several regions: its INVITEs are spaced at its
`cps` within each region only (dispatcher/phone/invite_spacing.py, each region's own store), so two regions'
INVITEs may reach the trunk closer than a turn, though their calls hold the `cps` across regions. Said by the
program, so the plan, a preview and `voicefleet config check` show it (docs/sip.md, "Pacing")."""

from __future__ import annotations

import pulumi

from stacks.config.regions import RegionSettings
from stacks.config.sip_edge import SipEdgeSettings

DEFAULT_CPS = 1.0  # the edge's own (sipedge/config.py)


def invite_spacing_notes(edge: SipEdgeSettings | None, regions: RegionSettings | None) -> list[str]:
    """One line per trunk with a `terminationUri` (it places calls) when the deployment has several regions."""
    count = len(regions.urls) if regions is not None else 1
    if edge is None or count < 2:
        return []
    notes = []
    for trunk in edge.key.trunks:
        if trunk.termination_uri is None:
            continue
        cps = trunk.cps if trunk.cps is not None else DEFAULT_CPS
        notes.append(f"sipEdge trunk {trunk.name!r} (cps {cps:g}) with {count} regions: each region spaces its "
                     f"INVITEs on its own, so {count} regions' INVITEs may reach the trunk less than {1 / cps:g} s "
                     f"apart (their calls still hold cps {cps:g} across the regions). If the carrier refuses "
                     f"INVITEs closer than that, set this trunk's cps to {cps / count:g} (cps / regions) in every "
                     "region's sipEdge: every region's calls then go at that pace in all (docs/sip.md, Pacing)")
    return notes


def warn_invite_spacing(edge: SipEdgeSettings | None, regions: RegionSettings | None) -> None:
    for note in invite_spacing_notes(edge, regions):
        pulumi.log.warn(note)
