"""What a call's machine costs on each provider at its default size, by the table sessions are priced
with (dispatcher/reserve/prices.py, through dispatcher/sessions/cost.py): a cold call and a
warm-claimed one whose bot waited idle before its claim.

    uv run python -m bench.session_cost --minutes 3 --idle-seconds 60

Prices, not measurements: the list prices the table holds (its sources are printed). The figures are
in docs/operations.md ("What a call cost").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.reserve.prices import bot_price
from dispatcher.sessions.cost import SessionCosts


@dataclass
class Provider:
    """As much of a machines provider as its price reads: its name and its size's settings."""

    name: str
    settings: object = None


PROVIDERS = (
    Provider("ecs"), Provider("gce"), Provider("cloudrun"), Provider("fly"),
    Provider("modal", ModalSettings(token_id="-", token_secret="-", app="-", image_id="-")),  # 1 core, 2 GiB
    Provider("aci", AciSettings(subscription_id="-", resource_group="-", location="-", bot_image="-")),
    Provider("local"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="the call's length")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="a warm bot's idle wait before its claim")
    args = parser.parse_args()
    seconds = args.minutes * 60
    print(f"| provider | size | $/hour | a {args.minutes:g}-minute call, cold | warm ({args.idle_seconds:g} s idle) "
          "| source |")
    print("|---|---|---|---|---|---|")
    for provider in PROVIDERS:
        price = bot_price(provider, {})  # type: ignore[arg-type]
        costs = SessionCosts(provider.name, price)
        cold = costs.of([{"event": "launched", "at": 0.0}, {"event": "ended", "at": seconds}], running=False)
        warm = costs.of([{"event": "claimed", "at": 0.0, "idle_seconds": args.idle_seconds},
                         {"event": "ended", "at": seconds}], running=False)
        assert cold is not None and warm is not None and price is not None
        print(f"| {provider.name} | {price.size} | {price.dollars_per_second * 3600:.4f} | "
              f"${cold.total:.5f} | ${warm.total:.5f} | {price.source} |")


if __name__ == "__main__":
    main()
