"""WhatsApp Business calls: Meta's calling webhook becomes a session on the SmallWebRTC transport, and
the bot's SDP answer goes back to Meta through the Graph API (docs/phone.md, "WhatsApp calls").

settings.py (the numbers and credentials), signature.py (`X-Hub-Signature-256`), events.py (the
webhook's call events), graph.py (`POST /{phone_number_id}/calls`), answer_sdp.py (what Meta takes of
an answer), calls.py (a call's life: session, answer, hang-ups); the call on its timeline:
dispatcher/observability/whatsapp_call.py.
"""
