"""A Kubernetes quantity (K8S_BOT_CPU, K8S_BOT_MEMORY) as the API server stores it: its canonical form.

The API server parses a pod's `resources` and writes each quantity back canonically before a validating
policy reads it (k8s.io/apimachinery resource.Quantity: no precision lost, no fractional digits, the
largest suffix of the written kind): `0.5` is stored `500m`, `1000m` is `1`, `1.5Gi` is `1536Mi`, and a
binary value below 1024 or not whole is written in decimal. The bots' policy compares a pod's quantities
to the stack's as text (stacks/k8s/bot_pod_fields.py), so it admits this form beside the one written.
Only the forms the dispatcher accepts are read (dispatcher/machines/k8s/settings.py `_QUANTITY`: no sign,
no exponent); a fraction finer than a nano is rounded up, as the API server does. The arithmetic is exact
(fractions, never a rounded decimal); a value above LARGEST (2^63-1, past which the API server holds a
quantity in another form) is refused (`Unconvertible`): the stack's config refuses one before
(stacks/config/k8s.py).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}  # powers of 1024
NANOS = 10 ** 9
LARGEST = 2 ** 63 - 1
WRITTEN = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")  # as the dispatcher accepts one


class Unconvertible(ValueError):
    """A quantity this module does not write canonically: not of the WRITTEN form, or above LARGEST."""


def canonical(quantity: str) -> str:
    """`quantity` (of the WRITTEN form, at most LARGEST) as the API server stores it."""
    if not WRITTEN.match(quantity):
        raise Unconvertible(f"{quantity!r} is not a quantity of the form the dispatcher takes")
    suffix = next((name for name in (*BINARY, *DECIMAL) if name and quantity.endswith(name)), "")
    number = Fraction(quantity[:len(quantity) - len(suffix)])
    amount = number * (1024 ** BINARY[suffix] if suffix in BINARY else Fraction(10) ** DECIMAL[suffix])
    if amount > LARGEST:
        raise Unconvertible(f"{quantity!r} is above {LARGEST}, the largest quantity the stack writes")
    nanos = math.ceil(amount * NANOS)  # rounded up to a whole nano
    if suffix in BINARY and amount >= 1024 and amount.denominator == 1:
        return _binary(int(amount))
    return _decimal(nanos)


def _binary(amount: int) -> str:
    power = 0
    while amount % 1024 == 0 and power < max(BINARY.values()):
        amount, power = amount // 1024, power + 1
    return f"{amount}{next((name for name, value in BINARY.items() if value == power), '')}"


def _decimal(nanos: int) -> str:
    if nanos == 0:
        return "0"
    mantissa, exponent = nanos, -9
    while mantissa % 1000 == 0 and exponent < max(DECIMAL.values()):
        mantissa, exponent = mantissa // 1000, exponent + 3
    return f"{mantissa}{next(name for name, value in DECIMAL.items() if value == exponent)}"
