"""The agent-sandbox mode's pools per release: which SandboxWarmPool a release's claims check out from.

Each live release has a SandboxTemplate of its own (its image) and a SandboxWarmPool on it, both the
deployer's, the pool labelled `voicefleet.io/release=<release>` (docs/kubernetes.md, "Pools per
release"). The dispatcher finds them by that label, in one label-selected list, and writes only each
pool's `spec.replicas` (through its `scale` subresource). A claim names its session's release's pool,
so it adopts only that release's warm pods, never another version's.

The list is kept for REFRESH_SECONDS and read again at once (at most once per MISS_SECONDS) when a
release has no pool in it: a pool the deployer just made is found at its first start. The default
release, where no pool carries its label, is K8S_WARM_POOL's (a deployment with no releases keeps the
one pool it had). A release with no pool is refused with its name and the fix: a claim needs a pool
(`warmPoolRef` is required since v1beta1), so there is no cold start without one. A Role without
`list` on sandboxwarmpools (one made before the pools per release) is logged once, naming the grant:
every release but the default one then has no pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.pods import LABEL_RELEASE, LABEL_RETIRING
from dispatcher.releases.names import DEFAULT_RELEASE, is_release_name

REFRESH_SECONDS = 30.0  # a list of the pools is trusted this long
MISS_SECONDS = 2.0  # a release with no pool: the list read again, at most this often
POOL_VERBS = "list sandboxwarmpools"

log = logging.getLogger("dispatcher.machines.k8s")


class ReleasePools:
    def __init__(self, api: KubeApi, pools_path: str, *, default_pool: str, namespace: str, rbac: str = POOL_VERBS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api, self._path, self._default, self._namespace = api, pools_path, default_pool, namespace
        self._rbac = rbac  # the verbs a refusal names: every one the dispatcher needs, not this call's alone
        self._clock = clock
        self._pools: dict[str, str] = {}  # release → its pool's name, as last listed
        self._retiring: frozenset[str] = frozenset()  # releases whose pool is labelled LABEL_RETIRING
        self._listed_at = -float("inf")
        self._told_forbidden = False

    async def refresh(self) -> Mapping[str, str]:
        """Every labelled pool, listed now: release → pool name (one pool per release; a second is refused)."""
        response = await self._api.call("GET", self._path, params={"labelSelector": LABEL_RELEASE})
        if response.status_code == 403:  # a Role from before the pools per release: the default release's only
            if not self._told_forbidden:
                log.warning("the releases' SandboxWarmPools cannot be listed (grant the dispatcher's Role `list` on "
                            "sandboxwarmpools): only the default release has a pool, K8S_WARM_POOL %s", self._default)
                self._told_forbidden = True
            self._pools, self._retiring, self._listed_at = {}, frozenset(), self._clock()
            return {}
        if response.status_code != 200:
            raise self._api.failed(response, "list sandboxwarmpools", self._rbac)
        found: dict[str, str] = {}
        retiring: set[str] = set()
        for pool in response.json().get("items") or []:
            metadata: Mapping[str, Any] = (pool if isinstance(pool, dict) else {}).get("metadata") or {}
            release, name = (metadata.get("labels") or {}).get(LABEL_RELEASE), str(metadata.get("name", ""))
            if not is_release_name(release) or metadata.get("deletionTimestamp"):
                continue
            if release in found and found[release] != name:
                raise MachinesError("k8s_pool_ambiguous", f"release {release} has two SandboxWarmPools "
                                    f"({found[release]}, {name}) labelled {LABEL_RELEASE}={release} in namespace "
                                    f"{self._namespace}; keep one (docs/kubernetes.md, \"Pools per release\")")
            found[str(release)] = name
            if (metadata.get("labels") or {}).get(LABEL_RETIRING) == "true":
                retiring.add(str(release))
        self._pools, self._retiring, self._listed_at = found, frozenset(retiring), self._clock()
        return dict(found)

    async def known(self) -> Mapping[str, str]:
        """The pools as last listed, listed again once REFRESH_SECONDS old."""
        if self._clock() - self._listed_at >= REFRESH_SECONDS:
            await self.refresh()
        return self.with_default(self._pools)

    async def retiring(self) -> frozenset[str]:
        """The releases whose pool the stack keeps only for their last sessions (LABEL_RETIRING), as listed
        within REFRESH_SECONDS."""
        await self.known()
        return self._retiring

    def with_default(self, pools: Mapping[str, str]) -> dict[str, str]:
        return {DEFAULT_RELEASE: self._default, **pools} if DEFAULT_RELEASE not in pools else dict(pools)

    async def pool_of(self, release: str) -> str:
        """The pool a claim of `release` checks out from, or a refusal naming the release and the fix."""
        pools = await self.known()
        if release not in pools and self._clock() - self._listed_at >= MISS_SECONDS:
            pools = self.with_default(await self.refresh())  # a pool made since the last list
        if (pool := pools.get(release)) is not None:
            return pool
        raise MachinesError("k8s_no_release_pool", f"release {release} has no SandboxWarmPool labelled "
                            f"{LABEL_RELEASE}={release} in namespace {self._namespace}: create its SandboxTemplate "
                            "and SandboxWarmPool (docs/kubernetes.md, \"Pools per release\"), or set its weight to 0",
                            retry_after=10.0)

    async def is_pool(self, name: str) -> bool:
        """Whether `name` is one of voicefleet's pools (a release's, or K8S_WARM_POOL)."""
        if name in (await self.known()).values():
            return True
        if self._clock() - self._listed_at >= MISS_SECONDS:
            return name in self.with_default(await self.refresh()).values()
        return False
