"""`voicefleet loadtest`: real voice sessions against a deployment, measured (docs/cli.md). The callers
(webrtc.py with webrtc_caller.py; phone_line.py in each carrier's messages: carrier_frames.py,
twilio.py, mulaw.py), the schedule (plan.py), one session's steps (session.py) and measurements
(record.py, timeline.py), the run (run.py, progress.py, own_cost.py), the figures (summary.py) and
what a run leaves (result.py, chart.py); the command is command.py. Nothing here imports the
dispatcher: it is a client of the HTTP API, as any caller is."""
