"""Serving the app: uvicorn's settings with every connection bounded (server), and the drain that
lets calls finish on SIGTERM (draining). docs/operations.md says how a deploy drains.
"""
