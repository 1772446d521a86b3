"""The timeline append of the release before the opening was kept (one list, trimmed to its newest 64), as a
replica still running it during a rolling deploy sends it: for the tests of mixed releases and for
bench/timeline_append.py's comparison. Its arguments: the sealed event, the most kept, the time to live (ms),
'1' when the event may open the timeline."""

from __future__ import annotations

PREVIOUS_APPEND = """
if ARGV[4] ~= '1' and #redis.call('LRANGE', KEYS[1], 0, 0) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
