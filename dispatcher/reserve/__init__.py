"""The warm reserve: bots started ahead of demand, each claimed by exactly one session, never reused;
its sizing policy, pacing under the provider's limits, the rates it measures, and its metrics.

Lives here: everything about idle bots. Not here: how a provider keeps an idle machine
(machines/*/reserve.py), the start that claims one (sessions/).
"""
