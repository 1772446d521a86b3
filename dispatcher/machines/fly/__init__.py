"""`MACHINES=fly`: a Fly Machine per session.
"""
