"""The HTTP API: routes, request and response shapes (voicefleet's and Pipecat's dialects),
authentication, per-key limits, request bounds, the OpenAPI explorer and the local page.

Lives here: turning HTTP into calls on sessions and channels, and answers back into HTTP. Not here:
the rules those calls follow (sessions/, reserve/, channel/).
"""
