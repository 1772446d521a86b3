"""What the dispatcher says about itself: log lines (text or JSON, with the session, trace and
replica; credentials kept out), Prometheus metrics and their catalogue, and one OpenTelemetry trace
per session. The foundation layer: it imports nothing else of the dispatcher but settings.
"""
