"""Calls to services outside the dispatcher: the HTTP pool, bounded retries with backoff, client-side
rate limits, and how a refused or failed call becomes a stable reason.

Lives here: what every provider and Daily share to make an outside call well. Not here: any one
provider's API (machines/, media/), and the dispatcher's own HTTP API (api/).
"""
