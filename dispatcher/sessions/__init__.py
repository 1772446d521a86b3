"""The session lifecycle: start (idempotent, admitted), look up, stop; session ids; admission control;
the reaper that leaves nothing behind its session.

Lives here: what a session is and its rules. Not here: HTTP shapes (api/), machines (machines/),
rooms (media/).
"""
