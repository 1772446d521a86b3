"""Which releases the warm reserve holds idle bots for, and each one's share of the starts.

Each release with traffic gets its own idle bots (a claim takes only a bot of its session's release:
a machine serves one session, so versions never mix), sized by its share of the deployment's
starts. The share is the release's weight, as the traffic read from the store says; starts pinned
to a release at weight 0 (a tester's) are not counted: such a release holds no idle bot and its
pinned starts start cold. A release that falls to weight 0 loses its idle bots at once.

A bot tells which release it runs by the image its hello reports: the provider's
`reported_image(image)` of its release's image for the reserve's transport (a cloud provider's
image reference; locally, the fingerprint of the release's bot file's folder, so an edit there
retires that release's idle bots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dispatcher.machines.base import LaunchSpec, WarmMachines
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.releases.traffic import Traffic


@dataclass(frozen=True)
class WarmRelease:
    name: str
    image: str | None  # what the provider launches for it (None: its own setting, `bot_image`)
    share: float  # of the deployment's starts, 0-1


DEFAULT_ONLY = (WarmRelease(DEFAULT_RELEASE, None, 1.0),)


class ReserveReleases:
    def __init__(self, machines: WarmMachines, transport: str = "webrtc") -> None:
        self._machines = machines
        self.transport = transport  # the transport the reserve's bots serve (their release's image for it)
        self._releases: tuple[WarmRelease, ...] = DEFAULT_ONLY  # until the traffic is first read
        self._without: tuple[WarmRelease, ...] = ()  # releases at weight 0

    def follow(self, traffic: Traffic, catalogue: Catalogue) -> None:
        """The traffic changed (dispatcher/releases/live.py `listeners`): the releases with traffic now."""
        every = [WarmRelease(release.name, release.image_for(self.transport),
                             traffic.weights.get(release.name, 0) / 100) for release in catalogue.releases]
        self._releases = tuple(release for release in every if release.share > 0)
        self._without = tuple(release for release in every if release.share <= 0)

    @property
    def with_traffic(self) -> Sequence[WarmRelease]:
        return self._releases

    def reported(self, release: WarmRelease) -> str:
        """The image an idle bot of `release` reports (read each time: a local bot file may change)."""
        return self._machines.reported_image(release.image)

    def image_of(self, spec: LaunchSpec) -> str:
        """The image an idle bot must report to serve `spec`'s session: one of the session's release."""
        return self._machines.reported_image(spec.image)

    def current_images(self) -> dict[str, str]:
        """Images of the releases with traffic, each with its release's name: an idle bot of any
        other image is retired."""
        return {self.reported(release): release.name for release in self._releases}

    def retirement_reason(self, image: str) -> str:
        """Why an idle bot of `image`, no release with traffic's, goes: its release has no traffic
        now, or it runs an image no release has (an old build, a bot file edited since)."""
        without = {self.reported(release) for release in self._without}
        return "no_traffic" if image in without else "old_image"


def follow(releases: ReserveReleases, live: LiveReleases, changed: Callable[[], None]) -> None:
    """The reserve holds bots for the releases with traffic now, and after every change (then
    `changed`: the reserve sizes itself at once, retiring a release's bots if it lost its traffic)."""
    def seen(traffic: Traffic) -> None:
        releases.follow(traffic, live.catalogue)
        changed()

    live.listeners.append(seen)
    releases.follow(live.traffic, live.catalogue)
