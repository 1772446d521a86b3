"""The voicefleet voice bot: one Pipecat session per process (`python -m bot`, docs/bot.md)."""
