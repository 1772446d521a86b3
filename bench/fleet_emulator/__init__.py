"""The fleet emulator: the reserve measured through the real code, as the simulator measures its model.

Processes of their own (the harness must not be its own bottleneck): a redis-server with the
stack's store user, two or three `python -m dispatcher` replicas on the Fly provider, the emulated
cloud (`cloud.py`: the fake Fly API with cold starts drawn from the simulator's own model and Fly's
create limit, and a light bot per machine speaking the real channel protocol through the bot's own
channel client), and the load generator (`load.py`: the simulator's own arrivals and session
lengths, `POST /start` at the replicas in turn). `__main__.py` joins the two records: time from
`POST /start` to the bot's `ready` (both stamped with this machine's wall clock) and compares
its p95 with the simulator's on the same arrivals.
"""
