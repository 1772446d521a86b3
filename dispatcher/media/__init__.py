"""Where a session's audio meets its client: Daily rooms and meeting tokens, TURN credentials, and the
ICE servers handed to WebRTC clients.

Lives here: media services and the credentials for them. Not here: the machine the bot runs on
(machines/), the session that ties them together (sessions/).
"""
