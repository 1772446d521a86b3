"""voicefleet's bot host: runs one user's Pipecat bot file for one session per process (`python -m bot`).

The platform's side of a bot: configuration, the control channel, the runner arguments Pipecat's
runner would build, the session's lifecycle and reports (docs/bot.md). The bots themselves live
elsewhere: voicefleet's own are examples/ (the default is examples/parrot/bot.py); a user's is
named by `BOT_FILE`.
"""
