"""Regions as peers: one global voicefleet made of regional deployments that know each other.

A region is a whole deployment (its store, reserve, relay and bots). `config` reads which region
this is and every region's public URL; `signing` signs what one region asks another and refuses
what no region sent; `peers` keeps, for every other region, whether it answers, its measured
round trip and the capacity it advertises. docs/regions.md.
"""
