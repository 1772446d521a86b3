"""`MACHINES=local`: a bot subprocess per session on this host (the embedded default).
"""
