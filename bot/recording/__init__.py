"""The call's recorder, the bot host's own (never the user's bot): imported only for a session the
dispatcher asked to record, so a bot that records nothing pays nothing at start-up.

tap.py sees both directions of the transport, clock.py lays them on the call's wall clock,
parts.py cuts the WAV stream into the upload's parts, uploader.py puts them where the dispatcher
says, and recorder.py runs them off the audio path (docs/recording.md).
"""
