"""The routes, one module per concern; dispatcher/api/mount.py includes them in this order.

    sessions        POST /start, GET and DELETE /sessions/{id}
    offers          a session's SmallWebRTC signalling (/sessions/{id}/api/offer)
    runner_offer    the dev runner's direct offer (/api/offer)
    bots            the sockets bots dial: /bots/channel, /bots/media/{session_id}
    carriers        carriers' media streams (/ws/...)
    webhooks        carriers' call webhooks (/phone/twilio, /phone/telnyx, /phone/plivo)
    daily_dialin    Daily dial-in's webhook and its bot's pinlessCallUpdate (/phone/daily/...)
    daily_webhooks  Daily's signed webhooks: a warm transfer's dial-out answered or ended (/phone/daily/webhook)
    ops             /healthz, /metrics
    docs            /docs, /openapi.json (the OpenAPI explorer, served from here)
    page            GET / in local mode: the page to talk to a local bot
"""
