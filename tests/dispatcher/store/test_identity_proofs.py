"""A bot hello's identity proof is admitted once across every replica (dispatcher/channel/identity.py,
`OneUse`): one presented at replica a is refused at replica b, whose own memory never saw it, before
the provider is asked; a fresh proof still passes at b. Against a real redis-server."""

from __future__ import annotations

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import OneUse, ProofSeen
from dispatcher.store.redis_coordination import RedisCoordination


class Provider:
    """The provider's own check (what `OneUse` wraps): every proof is its machine's; counts its calls."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        self.asked.append(hello.identity)
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return ProofSeen("test:" + hello.identity, 60) if hello.identity is not None else None


def hello(identity: str) -> Hello:
    return Hello(machine_id="m-1", image="dev", capabilities=("webrtc",), session_id="s-1", identity=identity)


GRANT = BotGrant(kind="session", subject="s-1", expires=2**40)


async def test_a_proof_admitted_at_one_replica_is_refused_at_another_before_its_provider_is_asked(
    replica_pair: tuple[RedisCoordination, RedisCoordination],
) -> None:
    provider_a, provider_b = Provider(), Provider()
    at_a = OneUse(provider_a, replica_pair[0].identity_proofs)
    at_b = OneUse(provider_b, replica_pair[1].identity_proofs)
    assert await at_a.refusal(GRANT, hello("proof-1")) is None
    refused = await at_b.refusal(GRANT, hello("proof-1"))
    assert refused is not None and "already presented" in refused
    assert provider_b.asked == [], "a replayed proof was checked with the provider again"
    assert await at_b.refusal(GRANT, hello("proof-2")) is None  # the bot's re-dial: a fresh proof
    assert provider_b.asked == ["proof-2"]
