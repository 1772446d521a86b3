"""What the dispatcher's replicas share, behind one contract (`coordination.py`) with two
implementations: one process (`local.py`, `memory.py`: everything in this process's memory, the
default and local mode's) and several replicas on a Valkey/Redis store (`redis_coordination.py`,
chosen by `REDIS_URL`): keyed starts leased (one launch per session across replicas), session
owners recorded so signalling reaches the replica holding the bot's channel, idle-bot claims
recorded, admission and per-key start rates counted across replicas. A store that does not answer
is forgiven in one place (`forgiving.py`). The providers' records stay the source of truth for
machines. docs/replicas.md has what is stored and what happens when the store is down.
"""
