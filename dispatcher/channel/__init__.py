"""The bots' channel: the WebSocket each bot dials (bots accept nothing inbound), which bots are
connected, and what travels over it (assignments, reports, SmallWebRTC signalling, replica forwarding).

Lives here: the dispatcher's end of `botchannel.contract`. Not here: the WebSocket route bots dial
(dispatcher/api/routers/bots.py), what a machine is or how one is launched (machines/), what the
reserve does with an idle bot (reserve/).
"""
