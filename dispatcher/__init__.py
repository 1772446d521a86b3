"""The dispatcher: answers `POST /start`, gets each session one machine of its own, and speaks the
shapes Pipecat's clients use. docs/architecture.md draws the packages; tests/test_layering.py
holds them to one direction of imports. Lowest first, each may import only what is below it:

    settings, errors, numbers,  one settings module, the one JSON error shape, bounded number reading,
    recent                      and the one bounded map of a process's per-session memories
    observability/              log lines, metrics, one trace per session
    store/                      the optional coordination store of several replicas
    releases/                   the bot's versions and the traffic each takes
    outbound/                   calls to services outside (HTTP pool, retries, rate limits)
    channel/                    the bots' channel (bots dial in; nothing dials a bot)
    machines/                   one machine per session, one subpackage per provider
    media/                      Daily rooms, TURN, ICE
    artifacts/                  every call kept: the recording policy, the stores, uploads, reports
    reserve/                    warm bots, claimed once
    models/                     the shared speech-to-speech model service: its free streams, read
    sessions/                   the session lifecycle, admission, the reaper
    usage/                      what a call's services cost, and the usage rolled up per day and key
    phone/                      phone calls: who may open one, its bot and its media relay
    api/                        the whole HTTP surface: every route, WebSocket endpoint, middleware
    app, wiring, factory,       the object graph built once from settings (wiring, factory),
    serving/, __main__          served by uvicorn with every connection bounded, drained on SIGTERM
"""
