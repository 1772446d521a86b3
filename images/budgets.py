"""How much each image's runtime closure may weigh: the one place the budgets are written.

A closure is the image's `/opt/venv/lib/python3.*/site-packages` as the build stage leaves it (after
the dispatcher's botocore pruning), bytecode included; sizes are apparent sizes (what a layer tarball
stores before compression) in MB = 10^6 bytes. Checked on the rebuilt closures by
tests/images/test_closure_budgets.py, on the built images by images/ci/run_image.py, reported by
bench/image_size.py.

- bot: the Daily image of the default bot project (the parrot). Pull time is cold-start time.
- bot-webrtc: the SmallWebRTC image; aiortc's stack (av, aioice, pylibsrtp) is larger than daily-python.
- dispatcher: the HTTP service; its growth since the first budget was its own runtime needs (the bot
  channel's websockets, aiohttp for provider calls, redis for the replicas' store), paid for by
  keeping only the botocore models it reads and leaving boto3 out.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

MB = 1_000_000
CLOSURE_BUDGET_MB: dict[str, float] = {"bot": 400.0, "bot-webrtc": 450.0, "dispatcher": 80.0}


def installed_mb(site_packages: Path) -> float:
    """Apparent size of the regular files under site-packages (symlinks not followed), in MB."""
    return sum(p.stat().st_size for p in site_packages.rglob("*") if p.is_file() and not p.is_symlink()) / MB


def allowance_mb(image: str) -> float:
    """What a bot image may weigh over the Daily image's budget: the SmallWebRTC image carries
    aiortc's stack on top, so a budget stated for the Daily image allows it this much more."""
    return CLOSURE_BUDGET_MB[image] - CLOSURE_BUDGET_MB["bot"] if image.startswith("bot") else 0.0


def closure_budget_mb(image: str, own_mb: float | None = None) -> float:
    """The one budget rule, read by the plan (stacks/config/bot.py) and the image build
    (images/ci/run_image.py) alike: voicefleet's own, or a project's own `own_mb` (a stack's
    botImageBudgetMb, the build's BOT_IMAGE_BUDGET_MB), which is the Daily image's, plus the
    image's allowance over it."""
    return own_mb + allowance_mb(image) if own_mb else CLOSURE_BUDGET_MB[image]


def budget_to_set(sizes_mb: dict[str, float]) -> int:
    """The least whole project budget (botImageBudgetMb, BOT_IMAGE_BUDGET_MB) that holds every one of
    these bot images' closures, image -> MB: the number to tell someone who accepts the size."""
    return max(math.ceil(size - allowance_mb(image)) for image, size in sizes_mb.items())


def over_budget(image: str, site_packages: Path, budget_mb: float | None = None) -> str | None:
    """A sentence when the closure is over its budget (`budget_mb`: a project's own, raised knowingly
    as a stack's botImageBudgetMb is), None when it is within."""
    size, budget = installed_mb(site_packages), closure_budget_mb(image, budget_mb)
    if size <= budget:
        return None
    allowance = allowance_mb(image)
    where = "images/budgets.py" if not budget_mb else "the project's own" + (
        f" {budget_mb:.0f} MB + {allowance:.0f} MB for aiortc's stack" if allowance else "")
    return f"the {image} closure is {size:.1f} MB, over its {budget:.0f} MB budget ({where})"


def main(argv: list[str]) -> int:
    """`python -m images.budgets IMAGE [OWN_MB]`: the MB the image's closure is held to (images/ci/build.sh)."""
    if len(argv) not in (1, 2) or argv[0] not in CLOSURE_BUDGET_MB:
        print(f"usage: python -m images.budgets {{{','.join(CLOSURE_BUDGET_MB)}}} [OWN_MB]", file=sys.stderr)
        return 2
    own = argv[1] if len(argv) == 2 else ""
    try:
        budget = closure_budget_mb(argv[0], float(own) if own else None)
    except ValueError:
        print(f"python -m images.budgets: OWN_MB must be a number of MB (got {own!r})", file=sys.stderr)
        return 2
    print(f"{budget:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
