"""Which region placed a Daily warm transfer's dial-out leg, read off the leg's own `userId`.

Daily posts every `dialout.*` webhook of a domain to one URL, and no store spans regions, so an event may land in a
region whose store did not place its leg. The leg's `userId` is the transfer's own, and Daily sends it back on every
event: with several regions its first hex digits are the placing region's tag (`region_tag`, as a session id
carries it), so the region an event lands in names the owner from the event alone, asking no one."""

from __future__ import annotations

import secrets

from botchannel.transfer import DAILY_PERSON_USER
from dispatcher.regions.config import TAG_CHARS, Regions

LEG_HEX = 24  # `transfer-` and 24 hex: 33 characters, within the 36 Daily takes for a userId


def leg_user(tag: str = "") -> str:
    """A new leg's `userId`: this region's `tag` ("" for a dispatcher that is one region), then random hex."""
    return DAILY_PERSON_USER + tag + secrets.token_hex(LEG_HEX)[:LEG_HEX - len(tag)]


def placed_by(user: str | None, regions: Regions) -> str | None:
    """The region whose tag the leg `user` carries; None with one region, for no transfer's leg, or for a tag no
    region of `regions` has (another deployment's leg on the same Daily domain: not this deployment's)."""
    if not regions.several or user is None or not user.startswith(DAILY_PERSON_USER):
        return None
    tag = user[len(DAILY_PERSON_USER):len(DAILY_PERSON_USER) + TAG_CHARS]
    return regions.by_tag.get(tag) if len(tag) == TAG_CHARS else None
