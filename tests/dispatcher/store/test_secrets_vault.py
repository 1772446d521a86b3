"""Where a cold session's values wait for its bot: sealed for one session under the deployment's
key in the store, bounded and expiring in one replica's memory, and there when the store does not
answer."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dispatcher.channel.credentials import BotCredentials
from dispatcher.store.client import Store, StoreSettings, StoreUnavailable
from dispatcher.store.forgiving import ForgivingValues
from dispatcher.store.secrets_vault import MemoryVault, StoreVault, VaultFull, seal, unseal

VALUES = {"session_id": "s-1", "token": "bot-token", "body": {"caller": "patient-4711"}}


def test_a_sealed_record_opens_for_its_own_session_only_and_with_the_deployments_key_only() -> None:
    key = AESGCM(BotCredentials("d" * 40).sealing_key)
    sealed = seal(key, "s-1", VALUES)
    assert "bot-token" not in sealed and "patient-4711" not in sealed
    assert unseal(key, "s-1", sealed) == VALUES  # control
    assert unseal(key, "s-2", sealed) is None  # replayed as another session's record
    assert unseal(AESGCM(BotCredentials("e" * 40).sealing_key), "s-1", sealed) is None  # another deployment
    assert unseal(key, "s-1", "not base64!") is None


def test_the_sealing_key_is_not_the_channel_credentials_key() -> None:
    credentials = BotCredentials("d" * 40)
    assert credentials.sealing_key not in (credentials._bot_key, b"d" * 40)  # derived for this use alone


async def test_a_replicas_memory_keeps_values_until_taken_or_expired_and_bounded() -> None:
    now = [0.0]
    vault = MemoryVault(clock=lambda: now[0], max_kept=2)
    await vault.put("s-1", VALUES, ttl_seconds=10)
    await vault.put("s-2", VALUES, ttl_seconds=30)
    with pytest.raises(VaultFull):
        await vault.put("s-3", VALUES, ttl_seconds=10)
    assert await vault.get("s-1") == VALUES
    now[0] = 10.0
    assert await vault.get("s-1") is None  # expired
    await vault.put("s-3", VALUES, ttl_seconds=10)  # the expired one made room
    await vault.delete("s-2")
    assert await vault.get("s-2") is None and await vault.get("s-3") == VALUES


async def test_with_the_store_unreachable_the_values_wait_in_the_launching_replica() -> None:
    """A start goes on through a store outage: its values stay here, where its bot's hello may come."""
    store = Store(StoreSettings(url="redis://127.0.0.1:9/0", timeout_seconds=0.2))  # nothing listens there
    values = ForgivingValues(StoreVault(store, BotCredentials("d" * 40).sealing_key), MemoryVault())
    try:
        await values.put("s-1", VALUES, ttl_seconds=60)
        assert await values.get("s-1") == VALUES
        assert await values.read("s-1") == VALUES
        await values.delete("s-1")
        assert await values.get("s-1") is None
    finally:
        await store.aclose()


class BlinkingStore:
    """The replicas' store, sealed values and all, that does not answer its first `misses` reads."""

    def __init__(self, misses: int) -> None:
        self.misses = misses
        self.kept: dict[str, dict[str, object]] = {}

    async def put(self, session_id: str, values: dict[str, object], ttl_seconds: float) -> None:
        self.kept[session_id] = dict(values)

    async def get(self, session_id: str) -> dict[str, object] | None:
        if self.misses > 0:
            self.misses -= 1
            raise StoreUnavailable("the store did not answer: TimeoutError")
        return self.kept.get(session_id)

    async def delete(self, session_id: str) -> None:
        self.kept.pop(session_id, None)


async def test_a_store_that_blinks_at_the_hello_is_asked_again_before_the_bot_goes_without() -> None:
    store = BlinkingStore(misses=2)
    values = ForgivingValues(store, MemoryVault())  # type: ignore[arg-type]
    await values.put("s-1", VALUES, ttl_seconds=60)
    assert await values.read("s-1") == VALUES  # the third read answers
    store.misses = 10
    assert await values.read("s-1") is None  # one that stays down: the bot gets them when it dials again
    assert store.misses == 10 - 4  # asked four times, then given up
    assert await values.get("s-1") is None and store.misses == 10 - 5  # a look (not the delivery's) is one ask


async def test_values_put_again_live_until_their_new_expiry_and_taken_ones_do_not_hold_a_place() -> None:
    now = [0.0]
    vault = MemoryVault(clock=lambda: now[0], max_kept=3)
    await vault.put("s-1", VALUES, ttl_seconds=10)
    await vault.put("s-1", VALUES, ttl_seconds=100)  # a retried start: its first expiry no longer applies
    now[0] = 50.0
    await vault.put("s-2", VALUES, ttl_seconds=10)  # drops what expired by now: not s-1
    assert await vault.get("s-1") == VALUES
    for n in range(500):  # bots that took their values at once: nothing of them is kept or counted
        await vault.put(f"t-{n}", VALUES, ttl_seconds=10)
        await vault.delete(f"t-{n}")
    assert await vault.get("s-1") == VALUES and await vault.get("s-2") == VALUES
    await vault.put("s-3", VALUES, ttl_seconds=100)
    with pytest.raises(VaultFull):
        await vault.put("s-4", VALUES, ttl_seconds=10)
    now[0] = 61.0
    await vault.put("s-4", VALUES, ttl_seconds=10)  # s-2 expired at 60: its place is free
    assert await vault.get("s-2") is None and await vault.get("s-4") == VALUES
