"""A warning for a trunk that places calls in a deployment of several regions: its INVITEs take their turns at
its `cps` from one home region's bucket (dispatcher/phone/invite_spacing.py), but each region's edge sends its
own on by its own way to the trunk, so two regions' INVITEs may reach it closer than a turn by the difference of
those ways (and, while the home runs an earlier release, each region spaces its own alone). Said by the
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
        notes.append(f"sipEdge trunk {trunk.name!r} (cps {cps:g}) with {count} regions: one home region spaces its "
                     f"INVITEs at cps {cps:g} for every region, and each region's edge sends its own on from there, "
                     f"so two regions' INVITEs may reach the trunk less than {1 / cps:g} s apart by the difference "
                     "of their edges' ways to it (by more while the home runs an earlier release, each region then "
                     f"spacing its own). If the carrier refuses INVITEs closer than that, set this trunk's cps to "
                     f"{cps / count:g} (cps / regions) in every region's sipEdge: every region's calls then go at that "
                     "pace in all (docs/sip.md, Pacing)")
    return notes


def warn_invite_spacing(edge: SipEdgeSettings | None, regions: RegionSettings | None) -> None:
    for note in invite_spacing_notes(edge, regions):
        pulumi.log.warn(note)
