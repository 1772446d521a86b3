"""The caller id a Daily transfer's person sees (DAILY_DIALOUT_CALLER_ID): Daily's `dialOut/start` (warm) and
`sipCallTransfer` (cold) take `callerId` with a number, the `id` of a number bought on the Daily domain (a
UUID, as `GET /purchased-phone-numbers` lists them), never the number itself. One rule for the dispatcher's
settings and the stacks' check of them, apart from Daily's client so that neither imports an HTTP client."""

from __future__ import annotations

import re

# Daily's ids are written as hex groups of 8-4-4-4-12; `uuid.UUID` would also take braces, a `urn:uuid:`
# prefix or no hyphens, forms Daily never writes its ids in (its answer to one is not documented).
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# What a number pasted in place of its id looks like: E.164, its `+` or its spacing left out or not.
PHONE_LIKE = re.compile(r"\+?[1-9][0-9]{6,14}")
WAY_OUT = "the `id` of a number `GET /purchased-phone-numbers` lists, not the number itself"


def parse_caller_id(value: str) -> str | None:
    """`value` as Daily's `callerId` ("" is None: Daily picks one of the domain's numbers). `ValueError`
    naming the way out for anything but a UUID, and saying so when it is a phone number; its text starts
    with the value, for the reader to put the setting's or the stack key's name before it."""
    value = value.strip()
    if not value:
        return None
    if UUID.fullmatch(value):
        return value.lower()  # as Daily writes its ids: whether it matches them whatever their case is not documented
    if PHONE_LIKE.fullmatch(re.sub(r"[\s().-]", "", value)):
        raise ValueError(f"{value!r} is a phone number: Daily's callerId is {WAY_OUT}")
    raise ValueError(f"{value[:60]!r} is not a UUID: Daily's callerId is {WAY_OUT}")
