"""The coordination store (Valkey/Redis) that lets several dispatcher replicas act as one.

Optional: without `REDIS_URL` the dispatcher is one process and keeps everything in memory, as in
local mode. With it: keyed starts are leased (one launch per session across replicas), session
owners are recorded so signalling reaches the replica holding the bot's channel, idle-bot claims
are recorded, and per-key start rates are shared. The providers' records stay the source of truth
for machines. docs/replicas.md has what is stored and what happens when the store is down.
"""
