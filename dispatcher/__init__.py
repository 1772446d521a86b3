"""The dispatcher: answers `POST /start`, gets each session one machine of its own, and speaks the
shapes Pipecat's clients use. docs/architecture.md draws the packages; tests/test_layering.py
holds them to one direction of imports. Lowest first, each may import only what is below it:

    settings, errors, metrics,  one settings module, the error shape, the metrics registry,
    log_text, tracing,          how a value is shown in a log line, one trace per session,
    log_format                  and the lines' format (text or JSON with the session's fields)
    store/                      the optional coordination store of several replicas
    outbound/                   calls to services outside (HTTP pool, retries, rate limits)
    channel/                    the bots' channel (bots dial in; nothing dials a bot)
    machines/                   one machine per session, one subpackage per provider
    media/                      Daily rooms, TURN, ICE
    reserve/                    warm bots, claimed once
    sessions/                   the session lifecycle, admission, the reaper
    phone/                      phone calls: who may open one, its bot and its media relay
    api/                        the whole HTTP surface: every route, WebSocket endpoint, middleware
    app, wiring, factory,       the object graph built once from settings (wiring, factory) and
    server, draining, __main__  served (uvicorn's limits, a drain that lets calls finish on SIGTERM)
"""
