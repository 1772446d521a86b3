"""The create limits a drain hands the providers it lists and stops machines with: it creates none,
so this process's own count (the provider's real rate) serves, and no store is needed."""

from __future__ import annotations

from dispatcher.store.coordination import CreateLimit
from dispatcher.store.memory import LocalCreateLimit


class DrainCreates:
    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        return LocalCreateLimit(per_second, burst)
