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

from pathlib import Path

MB = 1_000_000
CLOSURE_BUDGET_MB: dict[str, float] = {"bot": 400.0, "bot-webrtc": 450.0, "dispatcher": 80.0}


def installed_mb(site_packages: Path) -> float:
    """Apparent size of the regular files under site-packages (symlinks not followed), in MB."""
    return sum(p.stat().st_size for p in site_packages.rglob("*") if p.is_file() and not p.is_symlink()) / MB


def over_budget(image: str, site_packages: Path, budget_mb: float | None = None) -> str | None:
    """A sentence when the closure is over its budget (`budget_mb`: a project's own, raised knowingly
    as a stack's botImageBudgetMb is), None when it is within."""
    size, budget = installed_mb(site_packages), budget_mb or CLOSURE_BUDGET_MB[image]
    if size <= budget:
        return None
    where = "the project's own" if budget_mb else "images/budgets.py"
    return f"the {image} closure is {size:.1f} MB, over its {budget:.0f} MB budget ({where})"
