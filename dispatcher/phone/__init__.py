"""Phone calls: who may open one (carrier signatures, one-time path tokens), the call's session and
bot, and the relay of its frames between the carrier's socket and the bot's, across replicas too.

Lives here: the rules of a call. Not here: its routes (the carriers' WebSockets and webhooks, Daily
dial-in's webhook, the bots' media socket), which are dispatcher/api/routers/.
"""
