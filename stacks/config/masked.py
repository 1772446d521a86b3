"""A secret the offline tools cannot read: they see a stack file's ciphertext, never its value.

`python -m stacks.plan` and `voicefleet config check --stack` run the program without the stack's
secrets provider, so each `secure:` value reaches it as `mask(ciphertext)`. Two different ciphertexts
give two different masks (so a check that two secrets differ passes, and a copied ciphertext is still
caught), but a mask says nothing of the value's length or shape: a check of those skips a masked value
and says so (`Reader.secret`), and `pulumi up`, where the program gets the value itself, runs it.
"""

from __future__ import annotations

import hashlib

# Not a value anyone would choose as a secret: what marks the tools' stand-in apart from a real one.
PREFIX = "voicefleet-offline-mask:"
# What the plan stands in for a secret the stack file does not hold yet (stacks/tools/plan.py placeholders).
PLACEHOLDER_PREFIX = "placeholder-"


def mask(ciphertext: str) -> str:
    """The stand-in for the secret whose stack file entry is `secure: <ciphertext>`."""
    return PREFIX + hashlib.sha256(ciphertext.encode()).hexdigest()[:32]


def is_masked(value: str) -> bool:
    return value.startswith(PREFIX)


def is_stand_in(value: str) -> bool:
    """An offline run's value of a secret: a stack file's ciphertext masked, or the plan's placeholder."""
    return is_masked(value) or value.startswith(PLACEHOLDER_PREFIX)
