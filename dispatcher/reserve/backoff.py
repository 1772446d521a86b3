"""Backing off after failed bots: a broken bot file or image never makes the reserve launch in a loop.

A reserve bot that exits before its hello (its bot file does not import, the image does not start)
would be replaced at the next tick, forever: a Fargate task or a VM per second for a typo. After
each failed bot in a row the reserve waits twice as long before launching again (2 s, 4 s, 8 s …,
at most 5 minutes), and then launches one bot at a time, a probe, until one says hello: that bot
is healthy, the backoff is over and the reserve refills as usual. So a broken bot costs a handful of
launches a minute at most, and a fixed one (a new image, a corrected file) recovers by itself.

Each image backs off on its own (`FailedBotsByImage`): a failed bot counts against the image it ran,
and a healthy hello ends that image's backoff only. One reserve holds bots of several releases; a
broken canary backing off the stable release's refills would leave the good release without warm bots.

Cold starts are not held back: a start is a user asking, and a broken bot answers it with its error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

BASE_SECONDS = 2.0
CAP_SECONDS = 300.0


@dataclass
class FailedBots:
    base_seconds: float = BASE_SECONDS
    cap_seconds: float = CAP_SECONDS
    in_a_row: int = 0  # failed bots since the last healthy one
    total: int = 0
    last_reason: str | None = None
    _until: float = field(default=0.0, repr=False)

    def failed(self, now: float, reason: str) -> None:
        self.in_a_row += 1
        self.total += 1
        self.last_reason = reason
        self._until = now + min(self.cap_seconds, self.base_seconds * 2 ** (self.in_a_row - 1))

    def healthy(self) -> None:
        self.in_a_row = 0
        self.last_reason = None
        self._until = 0.0

    def waiting_seconds(self, now: float) -> float:
        return max(0.0, self._until - now) if self.in_a_row else 0.0

    def launches(self, now: float, planned: int, *, warming: int) -> int:
        """How many of the `planned` launches may go now: all without failures; else none while
        waiting or while a probe is still warming, then one."""
        if not self.in_a_row:
            return planned
        if now < self._until or warming:
            return 0
        return min(planned, 1)


@dataclass
class FailedBotsByImage:
    """The failed bots of each image (a release's bots report theirs), and the deployment's view
    of them: `total` failed bots, the worst image's `in_a_row`, the last failure's reason."""

    base_seconds: float = BASE_SECONDS
    cap_seconds: float = CAP_SECONDS
    total: int = 0
    last_reason: str | None = None
    _images: dict[str, FailedBots] = field(default_factory=dict, repr=False)

    def of(self, image: str) -> FailedBots:
        return self._images.get(image) or FailedBots(self.base_seconds, self.cap_seconds)

    def failed(self, now: float, image: str, reason: str) -> FailedBots:
        failed = self._images.setdefault(image, self.of(image))
        failed.failed(now, reason)
        self.total += 1
        self.last_reason = reason
        return failed

    def healthy(self, image: str) -> int:
        """A bot of `image` came up: its backoff is over. How many had failed in a row before it."""
        failed = self._images.pop(image, None)
        return failed.in_a_row if failed is not None else 0

    def keep(self, images: Iterable[str]) -> None:
        """Forgets the images no release with traffic has now: one coming back starts afresh."""
        wanted = set(images)
        self._images = {image: failed for image, failed in self._images.items() if image in wanted}

    def worst(self) -> FailedBots:
        """The image with the most failed bots in a row (no failure: an empty record)."""
        return max(self._images.values(), key=lambda failed: failed.in_a_row, default=FailedBots())

    @property
    def in_a_row(self) -> int:
        return self.worst().in_a_row
