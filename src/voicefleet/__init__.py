"""The `voicefleet` command: operate a voicefleet deployment through its HTTP API (docs/cli.md)."""
