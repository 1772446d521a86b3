"""The SIP edge: a process beside the dispatcher that answers a trunk's SIP calls (PJSIP's stack,
docs/sip.md) and carries each call's audio to a bot over the dispatcher's carrier WebSocket, as a
carrier's media stream does. It imports nothing of the dispatcher's: it speaks its HTTP API."""
