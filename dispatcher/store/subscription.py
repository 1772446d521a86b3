"""A pub/sub subscription held for a replica's life: subscribed again whenever the store drops it.

The subscription's connection never connects again by itself (`subscriber`). redis-py's own retry
would, inside a read, and re-subscribe unseen when the store is back before the read noticed it
was gone (a quick restart while this replica's loop was busy): `subscribed` would stay set through
the outage, and a subscriber that acts on subscribing again would not (the media bus replaces its
publisher's connection then, which died with the store's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dispatcher.store.client import StoreSettings, connect

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("dispatcher.store")

RESUBSCRIBE_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)


def subscriber(settings: StoreSettings, *, decode_responses: bool) -> Redis:
    """The client a subscription listens on: every lost connection reaches `listen_forever`."""
    return connect(settings, decode_responses=decode_responses, retries=0)


async def listen_forever(
    open_pubsub: Callable[[], PubSub],
    subscribe: Callable[[PubSub], Awaitable[Any]],
    received: Callable[[Any], None],
    subscribed: asyncio.Event,
    what: str,
) -> None:
    """Subscribes (`subscribed` set while it holds), hands every message to `received`, and when
    the store goes away subscribes again with backoff; runs until cancelled. `open_pubsub` makes
    its pub/sub on a `subscriber` client."""
    attempt = 0
    while True:
        pubsub = open_pubsub()
        try:
            await subscribe(pubsub)
            subscribed.set()
            attempt = 0
            async for message in pubsub.listen():
                received(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store went away: subscribe again when it is back
            subscribed.clear()
            log.warning("%s subscription lost (%s); subscribing again", what, type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(RESUBSCRIBE_DELAYS[min(attempt, len(RESUBSCRIBE_DELAYS) - 1)])
        attempt += 1
