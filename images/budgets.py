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
from dataclasses import dataclass
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


# With no budget set, a bot image over voicefleet's own reference passes, with this said: the plan
# (stacks/config/bot.py) and the image build (images/ci/run_image.py, build.sh) say the same.
NO_BUDGET = ("Not refused: no budget is set; to hold this stack to a size, `pulumi config set "
             "voicefleet:botImageBudgetMb N` (the image build reads it with STACK=<stack>, or BOT_IMAGE_BUDGET_MB=N)")


@dataclass(frozen=True)
class Judgement:
    """One image's size against its budget: refused or not, and what to say (None: nothing to say)."""

    refused: bool
    note: str | None


def judge(image: str, size_mb: float, own_mb: float | None = None, enough_mb: int | None = None) -> Judgement:
    """The one decision on an image's size, predicted (the plan) or built (the image build). voicefleet's
    own dispatcher image is held to its budget. A bot image is held to a project's own budget
    (`own_mb`: botImageBudgetMb, BOT_IMAGE_BUDGET_MB) plus its allowance, and refused over it, naming
    the number that would pass (`enough_mb`: the least that holds every image the stack builds; by
    default this one's); with none set, it passes, and over voicefleet's reference that is said."""
    if not image.startswith("bot"):
        budget = CLOSURE_BUDGET_MB[image]
        return Judgement(size_mb > budget, f"the {image} closure is {size_mb:.1f} MB, over its {budget:.0f} MB "
                                           "budget (images/budgets.py)" if size_mb > budget else None)
    if not own_mb:
        reference = CLOSURE_BUDGET_MB[image]
        if size_mb <= reference:
            return Judgement(False, None)
        return Judgement(False, f"the {image} image's packages are {size_mb:.0f} MB, over the {reference:.0f} "
                                f"MB voicefleet holds its own {image} image to, so every cold start pulls more. "
                                f"{NO_BUDGET}")
    budget = closure_budget_mb(image, own_mb)
    if size_mb <= budget:
        return Judgement(False, None)
    enough = enough_mb if enough_mb is not None else budget_to_set({image: size_mb})
    allowance = allowance_mb(image)
    held = f"{own_mb:.0f} MB" + (f" + {allowance:.0f} MB for aiortc's stack" if allowance else "")
    return Judgement(True, f"the {image} image's packages are {size_mb:.1f} MB, over its {budget:.0f} MB budget "
                           f"(the project's own {held}); to accept the size knowingly: `pulumi config set "
                           f"voicefleet:botImageBudgetMb {enough}` (the image build: BOT_IMAGE_BUDGET_MB={enough})")


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
    """`python -m images.budgets IMAGE [OWN_MB]`: the MB the image's closure is held to, `none` for a bot
    image with no project budget (images/ci/build.sh);
    `python -m images.budgets judge IMAGE SIZE_MB [OWN_MB]`: the decision on that size (exit 1: refused);
    `python -m images.budgets reference IMAGE`: voicefleet's own budget for the image."""
    if argv[:1] == ["judge"]:
        return _judge_command(argv[1:])
    if len(argv) == 2 and argv[0] == "reference" and argv[1] in CLOSURE_BUDGET_MB:
        print(f"{CLOSURE_BUDGET_MB[argv[1]]:g}")  # voicefleet's own, for its own project's build
        return 0
    if len(argv) not in (1, 2) or argv[0] not in CLOSURE_BUDGET_MB:
        print(f"usage: python -m images.budgets {{{','.join(CLOSURE_BUDGET_MB)}}} [OWN_MB]", file=sys.stderr)
        return 2
    own = argv[1] if len(argv) == 2 else ""
    try:
        budget = closure_budget_mb(argv[0], float(own) if own else None)
    except ValueError:
        print(f"python -m images.budgets: OWN_MB must be a number of MB (got {own!r})", file=sys.stderr)
        return 2
    # A bot image with no project budget is held to none (judge): the build says so, as the plan does.
    print("none" if argv[0].startswith("bot") and not own else f"{budget:g}")
    return 0


def _judge_command(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in CLOSURE_BUDGET_MB:
        print(f"usage: python -m images.budgets judge {{{','.join(CLOSURE_BUDGET_MB)}}} SIZE_MB [OWN_MB]",
              file=sys.stderr)
        return 2
    try:
        size, own = float(argv[1]), float(argv[2]) if len(argv) == 3 and argv[2] else None
    except ValueError:
        print(f"python -m images.budgets judge: SIZE_MB and OWN_MB are numbers of MB (got {argv[1:]})", file=sys.stderr)
        return 2
    judgement = judge(argv[0], size, own)
    if judgement.note is not None:
        print(f"{'FAIL' if judgement.refused else 'note:'} {judgement.note}",
              file=sys.stderr if judgement.refused else sys.stdout)
    return 1 if judgement.refused else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
