"""Test doubles of the external APIs (Daily, Fly Machines, Compute Engine, ECS via moto), in one place.

Each is a real HTTP server on 127.0.0.1 that follows the documented contract, errors included,
with knobs to inject failures and latency and a record of what it received. Never shipped.
Fixtures live in `tests.fakes.fixtures`; `tests.dispatcher.machines.harness` adapts them to the contract suite.
"""
