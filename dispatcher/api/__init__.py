"""The HTTP surface: every route, WebSocket endpoint and middleware of the dispatcher, the request
and response shapes (voicefleet's and Pipecat's dialects), keys and per-key limits, request bounds,
and the one state object routes reach.

    routers/        the routes, one module per concern (sessions, offers, bots, carriers, ops, ...)
    mount.py        puts the routers and the middleware on an app, in order
    state.py        the app's state object; dependencies.py reaches it, and who is calling

Lives here: turning HTTP and WebSockets into calls on sessions, channels and phone calls, and
answers back into HTTP. Not here: the rules those calls follow (sessions/, reserve/, channel/,
phone/), which import nothing from here.
"""
