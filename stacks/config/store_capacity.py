"""How many ECPUs a second the AWS coordination store may spend: enough for every session the
stack admits to be a phone call relayed between two replicas.

ElastiCache Serverless meters requests in ECPUs (ElastiCache Processing Units): a simple command
such as GET, SET or PUBLISH moving up to 1 KB costs 1 ECPU, bigger or heavier ones more. The
cache's `ecpu_per_seconds` maximum is a ceiling, not a reservation: ECPUs are billed as they are
used ($0.0023 per million for Valkey in us-east-1), and past the ceiling the cache throttles
(`ThrottledCmds`) instead of running the command.

What the dispatcher spends there:
- heartbeats, keyed starts (about 20 commands each, docs/performance.md), claims, signalling:
  light, and under `BASE_ECPU` (the whole ceiling before phone calls crossed the store);
- a phone call whose carrier socket and bot media socket are at two replicas: every 20 ms frame
  in each direction is one PUBLISH, 100 a second plus a keepalive every third of a lease
  (bench/phone_store_hop.py counts them). A Twilio media frame is about 390 bytes, so each
  PUBLISH is 1 ECPU; its delivery to the other replica's subscription is counted as one more,
  since AWS does not say whether it meters deliveries. 200 ECPU/s per relayed call, at most.

The ceiling is sized for every session being a relayed call. A lower one caps the relayed calls
below the sessions the stack admits (the earlier fixed 5000 allowed about 25 to 50 of aws-prod's
200), and their frames stall or the calls end `store_unavailable`; a higher one costs nothing
until it is used.
"""

from __future__ import annotations

FRAMES_PER_SECOND = 50  # each direction: Twilio, Telnyx, Plivo and Exotel send 20 ms frames
PUBLISHES_PER_RELAYED_CALL = 2 * FRAMES_PER_SECOND  # bench/phone_store_hop.py measured 99.7/s a call
ECPU_PER_PUBLISH = 2  # ≤ 1 KB in, and the same out to the other replica
ECPU_PER_RELAYED_CALL = PUBLISHES_PER_RELAYED_CALL * ECPU_PER_PUBLISH
BASE_ECPU = 5000  # everything else the replicas do in the store
MIN_ECPU, MAX_ECPU = 1_000, 15_000_000  # ElastiCache's range for `ecpu_per_seconds` maximum
PRICE_PER_MILLION_ECPU = 0.0023  # USD, ElastiCache Serverless for Valkey, us-east-1


def needed(sessions: int) -> int:
    """The ceiling for `sessions` sessions, every one a relayed call at once."""
    return min(MAX_ECPU, max(MIN_ECPU, BASE_ECPU + sessions * ECPU_PER_RELAYED_CALL))


def relayed_calls(ecpu_per_second: int) -> int:
    """How many relayed calls at once a ceiling leaves room for."""
    return max(0, (ecpu_per_second - BASE_ECPU) // ECPU_PER_RELAYED_CALL)


def hourly_cost(relayed: int) -> float:
    """USD an hour for `relayed` calls crossing the store, at the metering counted above."""
    return relayed * ECPU_PER_RELAYED_CALL * 3600 * PRICE_PER_MILLION_ECPU / 1_000_000
