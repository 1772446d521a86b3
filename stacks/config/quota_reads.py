"""A quota read that a refusal cannot fail (`accountQuotas`).

The read only sharpens the concurrency ceiling, so a deployer without the permission, or a project
without the API, still previews and ups: the refusal comes back as `Refused`, the ceiling counts the
documented default, and a warning names what the read needs. The engine answers an invoke its
provider refused with an error the program can catch; an output-form invoke (`get_…_output`) would
keep it in an output, and a failed output fails the program at its end, so the read is awaited here,
through the runtime's own invoke, and only its settled answer becomes an output."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.runtime

# The cloud's own error, whole: AWS's names the caller's ARN, the action and why (about 450 characters).
MAX_REASON_CHARS = 600
# What the SDK, the engine and the Terraform bridge put before the cloud's own error: the SDK's and the
# engine's invoke, the bridge's `invoking <token>: ` and its multierror's `1 error occurred: * ` (whitespace
# folded), so the warning starts at the AWS or GCP error itself.
WRAPPERS = re.compile(r"^(?:invoke of \S+ failed: |invocation of \S+ returned an error: |invoking \S+: "
                      r"|\d+ errors? occurred: \* )+")
# What an answer's parse may raise: a value missing, empty or of another type.
MALFORMED = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)


@dataclass(frozen=True)
class Refused:
    """A read that gave no quota: the provider refused it, or answered what cannot be read (`unread`)."""

    reason: str
    unread: bool = False  # the provider answered, but with no number the ceiling can count


def settled(token: str, args: Mapping[str, object], invoke: pulumi.InvokeOptions,
            value: Callable[[Mapping[str, Any]], float | None]) -> pulumi.Output[float | Refused | None]:
    """The quota `value` picks from the answer of invoke `token` (None where nothing answers, as under the
    offline plan's mocks), or `Refused`. `args` are the function's own names (camelCase, as in its schema)."""

    async def settle() -> float | Refused | None:
        try:
            answer = await pulumi.runtime.invoke_async(token, dict(args), opts=invoke)
        except Exception as error:  # noqa: BLE001 - any refusal: the default stands and the warning says why
            said = WRAPPERS.sub("", " ".join(str(error).split())) or type(error).__name__
            return Refused(said[:MAX_REASON_CHARS])
        try:  # an answer of a shape the function's schema does not promise is a read that says nothing
            found = value(answer or {})
        except MALFORMED as error:
            return Refused(f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS], unread=True)
        if found is not None and not math.isfinite(found):
            return Refused(f"the answer's value is {found}", unread=True)
        return found

    return pulumi.Output.from_input(asyncio.ensure_future(settle()))


def refused_warning(what: str, refused: Refused, needs: str) -> str:
    """The preview's warning for a refused read of `what`: the reason, the fallback, and the way out."""
    how, way_out = ("answered no value it could read", "Run") if refused.unread else ("was refused", f"{needs}, or run")
    return (f"accountQuotas: the read of {what} {how} ({refused.reason}): the concurrency ceiling counts the "
            f"documented default instead. {way_out} `pulumi config set accountQuotas false` to stop reading it "
            "(docs/operations.md, \"Your ceiling and how to raise it\")")
