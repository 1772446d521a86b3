"""Phone calls: carriers' media-stream WebSockets and webhooks, relayed to a warm bot per call."""
